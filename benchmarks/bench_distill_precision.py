"""Does bf16 autocast change what distillation learns? Gradients of one step, bf16 vs fp32.

From a trained teacher, its distillation run JSON and its latent cache: a few real distillation
steps move the student and fake score off the teacher, then for each of `--batches` batches
the student's (generator phase) and the fake score's (critic phase) gradients are taken three
times from the same state and batch: in float32, under bf16 autocast of the trained networks
(student, fake score, discriminator head: what `train.precision` "bf16" does; the frozen
teacher stays float32), and in float32 with other noise (the step's own randomness: the scale
the bf16 difference is to be read against). Prints a table and writes
`benchmarks/results/distill_precision.json`. The step-time side is `bench_distill.py
--precisions fp32,bf16`.

    python benchmarks/bench_distill_precision.py --teacher runs/demo/finetune/model \\
        --config runs/demo/distill.json --data runs/demo/latents [--warmup 4] [--batches 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from audiox_turbo.atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "distill_precision.json"


@contextmanager
def bf16_autocast(networks: list[torch.nn.Module], on: bool) -> Iterator[None]:
    """The networks' forwards under CPU bf16 autocast inside (as accelerate wraps them)."""
    if on:
        for net in networks:
            forward = type(net).forward.__get__(net)
            net.forward = torch.autocast("cpu", dtype=torch.bfloat16)(forward)
    try:
        yield
    finally:
        for net in networks:
            net.__dict__.pop("forward", None)


def step_gradient(
    task: Any, trainer: Any, batch: dict, phase: str, seed: int, bf16: bool
) -> tuple[torch.Tensor, dict[str, float]]:
    """The phase's flattened float64 gradient and its losses, from the state as it is (the
    critic phase reads the generator's sample, made first in float32 for every variant)."""
    ctx = trainer.context()
    generator = torch.Generator().manual_seed(seed)
    ctx = dataclasses.replace(ctx, step=10_000 + seed, generator=generator)
    task.prepared_step = -1
    if phase == "critic":
        task.training_step(batch, "generator", ctx)["loss"].backward()
        for m in task.modules().values():
            m.zero_grad(set_to_none=True)
    trained = [n for n in (task.student, task.fake_score, task.discriminator) if n is not None]
    with bf16_autocast(trained, bf16):
        losses = task.training_step(batch, phase, ctx)
    losses["loss"].backward()
    net = task.student if phase == "generator" else task.fake_score
    grad = torch.cat([p.grad.double().flatten() for p in net.parameters() if p.grad is not None])
    for m in task.modules().values():
        m.zero_grad(set_to_none=True)
    return grad, {k: float(v.detach()) for k, v in losses.items() if k != "student_step"}


def compare(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Cosine and relative distance |a − b| / |a| of two gradients."""
    cosine = float(torch.dot(a, b) / (a.norm() * b.norm()))
    return {"cosine": cosine, "relative_distance": float((a - b).norm() / a.norm())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="trained teacher model folder")
    parser.add_argument("--config", required=True, help="the distillation's run JSON")
    parser.add_argument("--data", required=True, help="latent cache (`data encode`)")
    parser.add_argument("--warmup", type=int, default=4, help="distillation steps first")
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()

    from audiox_turbo.cli.train import _generative_dataset
    from audiox_turbo.pipeline import AudioXTurbo
    from audiox_turbo.train.run_config import load_run_config
    from audiox_turbo.train.student import DistillTask
    from audiox_turbo.train.trainer import Trainer

    run = load_run_config(Path(args.config))
    fp32 = dataclasses.replace(run.train, precision="fp32")  # bf16 is this script's to switch
    run = dataclasses.replace(run, model=args.teacher, train=fp32)
    model = AudioXTurbo.from_pretrained(args.teacher)
    dataset, collate = _generative_dataset(run, args.data, model.config)
    task = DistillTask(model, run.train, run.distill, seed=run.train.seed)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(task, run.train, tmp, dataset, collate, progress=False, cpu=True)
        trainer.fit(max_steps=args.warmup)
        # reuse the ODE pairs the warm-up made (a new pair per call would cost a teacher ODE)
        task.settings = dataclasses.replace(task.settings, regression_pool=1)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=run.train.batch_size, collate_fn=collate
        )
        rows = []
        for i, batch in zip(range(args.batches), loader, strict=False):
            for phase in ("generator", "critic"):
                fp32, losses32 = step_gradient(task, trainer, batch, phase, i, False)
                bf16, losses16 = step_gradient(task, trainer, batch, phase, i, True)
                other, _ = step_gradient(task, trainer, batch, phase, i + 1000, False)
                rows.append(
                    {
                        "batch": i,
                        "phase": phase,
                        "bf16_vs_fp32": compare(fp32, bf16),
                        "fp32_other_noise": compare(fp32, other),
                        "norm_ratio_bf16": float(bf16.norm() / fp32.norm()),
                        "loss_fp32": losses32["loss"],
                        "loss_bf16": losses16["loss"],
                    }
                )
    print(
        f"{'batch':>5} {'phase':9} {'bf16 cos':>9} {'bf16 rel':>9} {'noise cos':>9} "
        f"{'noise rel':>9} {'loss fp32':>10} {'loss bf16':>10}"
    )
    for r in rows:
        b, n = r["bf16_vs_fp32"], r["fp32_other_noise"]
        print(
            f"{r['batch']:>5} {r['phase']:9} {b['cosine']:>9.5f} {b['relative_distance']:>9.4f} "
            f"{n['cosine']:>9.4f} {n['relative_distance']:>9.3f} {r['loss_fp32']:>10.5f} "
            f"{r['loss_bf16']:>10.5f}"
        )
    write_json_atomic(
        RESULTS,
        {
            "machine": "2-core CPU, torch CPU",
            "teacher": args.teacher,
            "config": args.config,
            "warmup_steps": args.warmup,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
