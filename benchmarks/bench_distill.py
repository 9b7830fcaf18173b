"""Distillation step time and peak memory; student (4 NFE) vs teacher (100 steps + CFG) speed.

Distillation: the real `DistillTask` (teacher + student + fake score + discriminator head,
backward simulation, GAN on) through the engine on in-memory latent clips, with
critic_updates=2 so critic-only and critic+generator steps alternate; each preset runs in
its own subprocess (clean peak RSS). Generation: one `AudioXTurbo` with random weights of
the preset produces 10 s of audio end-to-end (text encoding, sampling, decoding) as a student
(4 NFE, no CFG) and as a teacher (100 Euler steps, CFG: 200 NFE) in the same process, after
one untimed 10 s run (first-call shape warm-up); the codec decode of 10 s, common to both,
is also timed on its own.
Prints a table and writes `benchmarks/results/distill.json`.

    python benchmarks/bench_distill.py [--steps 6] [--presets tiny,demo] [--kinds distill,generate]
        [--precisions fp32,bf16] [--crop SECONDS]

`--precisions` times the distillation step under each training precision (`train.precision`:
bf16 is autocast of the student, fake score and discriminator; the frozen teacher stays in
float32), one subprocess after the other; `--crop` replaces the preset's crop (the `demo`
recipe distils on whole 5 s clips). Rows already in the results file for other (kind, preset,
precision, crop) are kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from audiox_turbo.atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "distill.json"
BATCH = {"tiny": 4, "demo": 8}
CROP = {"tiny": 1.0, "demo": 2.0}
SECONDS = 10.0
TEACHER_STEPS = 100
WARMUP_STEPS = 2


def count_step_flops(trainer: Any) -> list[int]:
    """Wrap the trainer's step to count the FLOPs (forward and backward) of its first two steps,
    the (untimed) warm-up: critic only, then generator + critic at critic_updates=2. FLOPs
    measure the work whatever the machine's load. Returns the list it fills."""
    from torch.utils.flop_counter import FlopCounterMode

    flops: list[int] = []
    step = trainer._train_step

    def counted(*args: Any, **kwargs: Any) -> Any:
        if len(flops) == WARMUP_STEPS:
            return step(*args, **kwargs)
        with FlopCounterMode(display=False) as counter:
            out = step(*args, **kwargs)
        flops.append(counter.get_total_flops())
        return out

    trainer._train_step = counted
    return flops


def measure_distill(
    preset_name: str, steps: int, precision: str, crop: float
) -> dict[str, float | int | str]:
    """Time `steps` distillation steps after WARMUP_STEPS; split critic-only / with generator."""
    import resource

    import torch

    from audiox_turbo.data.dataset import collate
    from audiox_turbo.pipeline import AudioXTurbo
    from audiox_turbo.train.run_config import DistillConfig, TrainConfig
    from audiox_turbo.train.student import DistillTask
    from audiox_turbo.train.trainer import Trainer

    teacher = AudioXTurbo.from_preset(preset_name)
    batch, frames = BATCH[preset_name], teacher.config.latent_frames(crop)
    latents = torch.randn(4 * batch, teacher.config.codec.latent_dim, frames)
    clips = [
        {
            "latents": x,
            "latent_mask": torch.ones(frames, dtype=torch.bool),
            "prompt_mask": torch.zeros(frames, dtype=torch.bool),
            "text": f"a tone number {i}",
            "text_present": True,
            "audio_prompt_present": False,
        }
        for i, x in enumerate(latents)
    ]
    cfg = TrainConfig(
        batch_size=batch,
        warmup_steps=0,
        max_steps=steps + WARMUP_STEPS,
        checkpoint_every=0,
        log_every=0,
        sample_every=0,
        num_workers=0,
        precision=precision,
    )
    task = DistillTask(teacher, cfg, DistillConfig(critic_updates=2))
    task.export = lambda directory, ctx: None
    params = {
        name: sum(p.numel() for p in m.parameters())
        for name, m in task.modules().items()
        if name != "codec"
    }
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(task, cfg, tmp, clips, collate, progress=False, cpu=True)
        step_flops = count_step_flops(trainer)
        trainer.fit()
        lines = (Path(tmp) / "logs/metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines][WARMUP_STEPS:]
    critic = [r["perf/step_s"] for r in records if "generator/loss" not in r]
    both = [r["perf/step_s"] for r in records if "generator/loss" in r]
    return {
        "kind": "distill",
        "preset": preset_name,
        "batch": batch,
        "crop_s": crop,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "params_m": {k: v / 1e6 for k, v in params.items()},
        "critic_step_gflop": step_flops[0] / 1e9,
        "critic_generator_step_gflop": step_flops[1] / 1e9,
        "critic_step_s": sum(critic) / len(critic),
        "critic_generator_step_s": sum(both) / len(both),
        "mean_step_s": sum(critic + both) / len(critic + both),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_generation(preset_name: str) -> dict[str, float | int | str]:
    """End-to-end 10 s generation: student 4 NFE vs teacher 100 steps with CFG, same weights."""
    import torch

    from audiox_turbo.pipeline import AudioXTurbo

    model = AudioXTurbo.from_preset(preset_name)
    prompt = "a church bell ringing three times"
    cfg = model.config.sampler.cfg
    model(text=prompt, duration=SECONDS, steps=4, cfg=1.0, method="student", seed=0)
    runs = {
        "student": dict(steps=4, cfg=1.0, method="student"),
        "teacher": dict(steps=TEACHER_STEPS, cfg=cfg, method="euler"),
    }
    row: dict[str, float | int | str] = {
        "kind": "generate",
        "preset": preset_name,
        "seconds_of_audio": SECONDS,
        "teacher_cfg": cfg,
        "threads": torch.get_num_threads(),
    }
    for name, kwargs in runs.items():
        start = time.perf_counter()
        out = model(text=prompt, duration=SECONDS, seed=0, **kwargs)
        row[f"{name}_s"] = time.perf_counter() - start
        row[f"{name}_nfe"] = out.nfe
    row["speedup"] = row["teacher_s"] / row["student_s"]
    latents = torch.randn(1, model.config.codec.latent_dim, model.config.latent_frames(SECONDS))
    start = time.perf_counter()
    with torch.no_grad():
        model.decode(latents)
    row["decode_s"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--presets", default="tiny,demo")
    parser.add_argument("--kinds", default="distill,generate")
    parser.add_argument("--precisions", default="fp32", help="distillation: fp32,bf16")
    parser.add_argument("--crop", type=float, help="distillation crop (s); default per preset")
    parser.add_argument(
        "--one", nargs=3, metavar=("KIND", "PRESET", "PREC"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        kind, preset_name, precision = args.one
        if kind == "distill":
            crop = CROP[preset_name] if args.crop is None else args.crop
            print(json.dumps(measure_distill(preset_name, args.steps, precision, crop)))
        else:
            print(json.dumps(measure_generation(preset_name)))
        return
    rows = []
    crop = () if args.crop is None else ("--crop", str(args.crop))
    for preset_name in args.presets.split(","):
        for kind in args.kinds.split(","):
            precisions = args.precisions.split(",") if kind == "distill" else ["fp32"]
            for precision in precisions:
                command = [sys.executable, __file__, "--one", kind, preset_name, precision]
                out = subprocess.run(
                    [*command, "--steps", str(args.steps), *crop],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"{'preset':6} {'prec':>4} {'batch':>5} {'crop':>5} {'critic s':>9} {'crit+gen s':>10} "
        f"{'mean s':>8} {'critic GFLOP':>12} {'crit+gen GFLOP':>14} {'peak MiB':>9}"
    )
    for r in (r for r in rows if r["kind"] == "distill"):
        print(
            f"{r['preset']:6} {r['precision']:>4} {r['batch']:>5} {r['crop_s']:>5} "
            f"{r['critic_step_s']:>9.3f} "
            f"{r['critic_generator_step_s']:>10.3f} {r['mean_step_s']:>8.3f} "
            f"{r['critic_step_gflop']:>12.1f} {r['critic_generator_step_gflop']:>14.1f} "
            f"{r['peak_rss_mib']:>9.0f}"
        )
    print(
        f"\n{'preset':6} {'student s (NFE)':>16} {'teacher s (NFE)':>16} {'speed-up':>9} "
        f"{'decode s':>9}"
    )
    for r in (r for r in rows if r["kind"] == "generate"):
        student = f"{r['student_s']:.2f} ({r['student_nfe']})"
        teacher = f"{r['teacher_s']:.2f} ({r['teacher_nfe']})"
        print(
            f"{r['preset']:6} {student:>16} {teacher:>16} {r['speedup']:>8.1f}x "
            f"{r['decode_s']:>9.2f}"
        )
    write_results(rows)


def write_results(rows: list[dict]) -> None:
    """Merge `rows` into the results file (same kind, preset, precision and crop replaced),
    atomically."""

    def key(r: dict) -> tuple:
        return r["kind"], r["preset"], r.get("precision", "fp32"), r.get("crop_s")

    kept = []
    if RESULTS.is_file():
        fresh = {key(r) for r in rows}
        old = json.loads(RESULTS.read_text())["rows"]
        kept = [r for r in old if key(r) not in fresh]
    write_json_atomic(RESULTS, {"machine": "2-core CPU, torch CPU", "rows": kept + rows})


if __name__ == "__main__":
    main()
