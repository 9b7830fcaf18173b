"""`audiox-turbo generate --prompts prompts.jsonl --out-dir out/`: a batch job with one
progress bar, resumable, reporting bad lines without stopping."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from audiox_turbo.errors import AudioXError

if TYPE_CHECKING:
    from audiox_turbo.interface import Pipeline


def generate_prompts_file(
    pipe_factory: Callable[[], Pipeline], prompts: str, out_dir: str, batch_size: int, seed: int
) -> None:
    """Plan the job (bad lines reported), make what is not made yet, exit 2 if any line failed."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from audiox_turbo.atomic import check_writable_dir
    from audiox_turbo.serve.batch_job import plan_job, run_job

    check_writable_dir(out_dir)
    pipe = pipe_factory()
    plan = plan_job(pipe, prompts, out_dir, seed)
    for problem in plan.problems:
        typer.echo(f"error: {problem}", err=True)
    skipped = len(plan.items) - len(plan.todo)
    if skipped:
        typer.echo(f"resuming: {skipped} of {len(plan.items)} items already made", err=True)
    with Progress(
        TextColumn("[bold]generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("items", total=len(plan.items), completed=skipped)
        failures = run_job(pipe, plan, out_dir, batch_size, lambda _: progress.advance(task))
    for problem in failures:
        typer.echo(f"error: {problem}", err=True)
    bad = len(plan.problems) + len(failures)
    made = len(plan.todo) - len(failures)
    typer.echo(f"made {made} items in {out_dir} ({skipped} already there, {bad} failed)")
    if bad:
        raise AudioXError(
            f"{prompts}: {bad} of {len(plan.items) + len(plan.problems)} lines failed"
        )
