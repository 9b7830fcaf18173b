"""`audiox-turbo recipe NAME|FILE --out DIR`: world → codec → latents → teacher (→ fine-tune)
→ student → benchmark, each stage skipped when done and resumed when interrupted
(`audiox_turbo.recipe`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def recipe_command(
    name: str = typer.Argument(
        ..., help="A recipe (tiny, distill-world, demo, demo-fast) or a recipe JSON."
    ),
    out: Path = typer.Option(..., "--out", help="Recipe folder (every stage's run inside)."),
    device: str = typer.Option("cpu", help="cpu | cuda: where the stages train and generate."),
    until: str | None = typer.Option(None, help="Stop after this stage."),
    show: bool = typer.Option(False, "--show", help="Print the recipe's JSON and exit."),
) -> None:
    """Train a whole model from nothing, as one resumable command."""
    from audiox_turbo.config import to_dict
    from audiox_turbo.recipe import Recipe, recipe

    config = recipe(name)
    if show:
        typer.echo(json.dumps(to_dict(config), indent=2))
        return
    Recipe(config, out, device=device).run(until=until, echo=typer.echo)
    typer.echo(f"{out}: stage times in stage_seconds.json, curves in curves/")
