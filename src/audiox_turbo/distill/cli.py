"""`audiox-turbo distill`: distil a teacher model dir into a few-step student.

Heavy imports (torch, the task, the pipeline) happen inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from audiox_turbo.train.cli import CONFIG, CPU, DATA, MAX_STEPS, OUT, RESUME

TEACHER = typer.Option(..., "--teacher", help="Teacher model directory (config.json + weights).")


def distill(
    teacher: Path = TEACHER,
    config: Path = CONFIG,
    data: str = DATA,
    out: Path = OUT,
    resume: bool = RESUME,
    max_steps: int | None = MAX_STEPS,
    cpu: bool = CPU,
) -> None:
    """Distil a teacher into a 4-step student (DMD + diffusion discriminator); exports run/model."""
    import dataclasses

    from audiox_turbo.pipeline import AudioXTurbo
    from audiox_turbo.train.cli import fit_run, generative_dataset
    from audiox_turbo.train.run_config import load_run_config
    from audiox_turbo.train.student import (
        DistillTask,
        check_distill_config,
        distill_train_config,
    )

    run = load_run_config(config)
    check_distill_config(run.distill, str(config))
    model = AudioXTurbo.from_pretrained(teacher)
    run = dataclasses.replace(
        run, model=str(teacher), train=distill_train_config(run.train, run.distill)
    )
    dataset, collate = generative_dataset(run, data, model.config)
    task = DistillTask(
        model,
        run.train,
        run.distill,
        validation_prompts=run.teacher.validation_prompts,
        validation_seconds=run.teacher.validation_seconds,
        seed=run.train.seed,
    )
    if not model.trained:
        typer.echo(f"note: teacher {teacher} has untrained (random) weights")
    fit_run(task, run, out, dataset, collate, resume, max_steps, cpu)
