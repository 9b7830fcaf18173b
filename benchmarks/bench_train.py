"""Training throughput: step time, samples/s, peak memory and data-wait fraction.

Codec (adversarial phase on, discriminator from `configs/PRESET.json`) and teacher at the
`tiny` and `demo` presets, each in its own subprocess (clean peak
memory), trained through the real engine on a generated WAV manifest read by `ClipDataset`
with 2 loader workers (one loader for all epochs, so workers start once). Prints a table and
merges its rows into `benchmarks/results/train.json`.

    python benchmarks/bench_train.py [--steps 6] [--presets tiny,demo] [--tasks codec,teacher]

With `--latents DIR` (cached latent shards, e.g. a recipe's `runs/demo/latents`) it measures
instead the `demo` teacher on them as the recipe trains it, twice: absent text/video attended
as learned nulls in batches that mix video and no video, and hidden from attention with
batches grouped by video (`attend_absent` false, `teacher.group_video`), the two alternating
step by step in one process so that both see the same machine load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from audiox_turbo.atomic import write_json_atomic

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RESULTS = Path(__file__).resolve().parent / "results" / "train.json"
BATCH = {"tiny": 4, "demo": 8}
CROP = {"tiny": 1.0, "demo": 2.0}


def write_manifest(folder: Path, sample_rate: int, clips: int, seconds: float) -> Path:
    """`clips` WAV files of tones + noise with captions, and their manifest."""
    import numpy as np
    import soundfile as sf

    from audiox_turbo.data.manifest import ClipRecord, write_manifest

    rng = np.random.default_rng(0)
    records = []
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    for i in range(clips):
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.standard_normal(n)
        sf.write(folder / f"clip{i}.wav", wave.astype(np.float32), sample_rate)
        records.append(
            ClipRecord(
                id=f"clip{i}",
                audio=f"clip{i}.wav",
                captions=[f"a tone number {i}"],
                duration=seconds,
                sample_rate=sample_rate,
                channels=1,
            )
        )
    path = folder / "manifest.jsonl"
    write_manifest(path, records)
    return path


def measure(kind: str, preset_name: str, steps: int) -> dict[str, float | int | str]:
    """Run `steps` timed steps (after 2 warm-up steps) and return the measurements."""
    import resource

    import torch

    from audiox_turbo.config import preset
    from audiox_turbo.data.dataset import ClipDataset, collate
    from audiox_turbo.train.codec import CodecTask
    from audiox_turbo.train.run_config import TeacherTrainingConfig, TrainConfig, load_run_config
    from audiox_turbo.train.teacher import TeacherTask
    from audiox_turbo.train.trainer import Trainer

    model = preset(preset_name)
    batch = BATCH[preset_name]
    cfg = TrainConfig(
        batch_size=batch,
        warmup_steps=0,
        max_steps=steps + 2,
        checkpoint_every=0,
        log_every=0,
        sample_every=0,
        num_workers=2,
        crop_seconds=CROP[preset_name],
    )
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(Path(tmp), model.codec.sample_rate, 4 * batch, 3.0)
        video = kind == "teacher"
        cond = model.conditioning
        dataset = ClipDataset(
            manifest,
            model.codec.sample_rate,
            model.codec.audio_channels,
            cfg.crop_seconds,
            video_fps=cond.video_fps if video else None,
            video_size=cond.video_size if video else None,
            tasks=["T2A"] if video else None,
        )
        if kind == "codec":
            settings = load_run_config(CONFIGS / f"{preset_name}.json").codec
            task = CodecTask(model, dataclasses.replace(settings, adversarial_start=0))
        else:
            task = TeacherTask(model, cfg, TeacherTrainingConfig(validation_prompts=()))
        task.export = lambda directory, ctx: None
        trainer = Trainer(task, cfg, Path(tmp) / "run", dataset, collate, progress=False, cpu=True)
        trainer.fit()
        lines = (Path(tmp) / "run/logs/metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines][2:]
    step_s = sum(r["perf/step_s"] for r in records) / len(records)
    data_s = sum(r["perf/data_s"] for r in records) / len(records)
    return {
        "task": kind,
        "preset": preset_name,
        "batch": batch,
        "crop_s": CROP[preset_name],
        "threads": torch.get_num_threads(),
        "step_s": step_s,
        "samples_per_s": batch / step_s,
        "data_wait_fraction": data_s / step_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_latents(data: str, steps: int) -> list[dict[str, float | int | str]]:
    """Step time of the recipe's `demo` teacher on cached latents, nulls attended vs skipped."""
    import time

    import torch

    from audiox_turbo.cli.train import _latent_dataset
    from audiox_turbo.config import from_dict, to_dict
    from audiox_turbo.recipe import demo_recipe
    from audiox_turbo.train.data_order import DataPosition, MicroBatches
    from audiox_turbo.train.run_config import RunConfig
    from audiox_turbo.train.task import StepContext
    from audiox_turbo.train.teacher import TeacherTask

    recipe = demo_recipe()
    variants = {}
    for name, skipped in (("nulls attended, mixed batches", False), ("skipped, grouped", True)):
        denoiser = dataclasses.replace(recipe.model.denoiser, attend_absent=not skipped)
        model = dataclasses.replace(recipe.model, denoiser=denoiser)
        settings = to_dict(dataclasses.replace(recipe.teacher.teacher, group_video=skipped))
        run = from_dict(RunConfig, {"train": to_dict(recipe.teacher.train), "teacher": settings})
        dataset, collate = _latent_dataset(run, data, model)
        batches = iter(MicroBatches(dataset, run.train, 0, 1, DataPosition(), collate))
        torch.manual_seed(0)
        task = TeacherTask(model, run.train, run.teacher)
        flow = task.flow.train()
        optimizer = torch.optim.AdamW(flow.parameters(), lr=1e-4)
        generator = torch.Generator().manual_seed(0)
        modules = {"flow": flow, "codec": task.codec}
        ctx = StepContext(0, modules, generator, torch.device("cpu"), None)
        variants[name] = (batches, task, optimizer, ctx, [])
    for step in range(steps + 2):
        for batches, task, optimizer, ctx, times in variants.values():
            batch = next(batches)
            start = time.perf_counter()
            loss = task.training_step(batch, "flow", ctx)["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= 2:
                times.append(time.perf_counter() - start)
    batch_size = recipe.teacher.train.batch_size
    return [
        {
            "task": "teacher",
            "preset": f"demo, cached latents: {name}",
            "batch": batch_size,
            "crop_s": recipe.teacher.train.crop_seconds,
            "threads": torch.get_num_threads(),
            "step_s": sum(times) / len(times),
            "samples_per_s": batch_size * len(times) / sum(times),
            "data_wait_fraction": None,
            "peak_rss_mib": None,
        }
        for name, (*_, times) in variants.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--presets", default="tiny,demo")
    parser.add_argument("--tasks", default="codec,teacher")
    parser.add_argument("--one", nargs=2, metavar=("TASK", "PRESET"), help=argparse.SUPPRESS)
    parser.add_argument("--latents", help="cached latent shards: the demo teacher on them")
    args = parser.parse_args()
    if args.latents:
        rows = measure_latents(args.latents, args.steps)
        for r in rows:
            print(f"{r['preset']:45} {r['step_s']:.3f} s/step  {r['samples_per_s']:.1f} samples/s")
        print(f"speed-up {rows[0]['step_s'] / rows[1]['step_s']:.2f}x")
        write_rows(rows)
        return
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.steps)))
        return
    rows = []
    for preset_name in args.presets.split(","):
        for kind in args.tasks.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--one", kind, preset_name, "--steps", str(args.steps)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    header = f"{'task':8} {'preset':6} {'batch':>5} {'step s':>8} {'samples/s':>10} "
    header += f"{'data wait':>9} {'peak MiB':>9}"
    print(header)
    for r in rows:
        print(
            f"{r['task']:8} {r['preset']:6} {r['batch']:>5} {r['step_s']:>8.3f} "
            f"{r['samples_per_s']:>10.2f} {r['data_wait_fraction']:>8.1%} {r['peak_rss_mib']:>9.0f}"
        )
    write_rows(rows)


def write_rows(rows: list[dict]) -> None:
    """Merge `rows` into RESULTS, replacing earlier rows of the same task and preset."""
    measured = {(r["task"], r["preset"]) for r in rows}
    kept = []
    if RESULTS.is_file():
        old = json.loads(RESULTS.read_text())["rows"]
        kept = [r for r in old if (r["task"], r["preset"]) not in measured]
    write_json_atomic(RESULTS, {"machine": "2-core CPU, torch CPU", "rows": kept + rows})


if __name__ == "__main__":
    main()
