"""`audiox-turbo convert official`: released AudioX-Turbo files -> an official model dir.

Heavy imports (torch, transformers) happen inside the command.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command()
def official(
    ckpt: str = typer.Option(..., "--ckpt", help="Student checkpoint (audiox_turbo.ckpt)."),
    vae: str = typer.Option(..., "--vae", help="Oobleck VAE checkpoint (vae.ckpt)."),
    out: str = typer.Option(..., "--out", "-o", help="Model directory to write."),
    t5: str | None = typer.Option(None, "--t5", help="Local Hugging Face t5-base dir."),
    clip: str | None = typer.Option(
        None, "--clip", help="Local Hugging Face clip-vit-base-patch32 dir (if not in --ckpt)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out dir."),
) -> None:
    """Convert the released AudioX-Turbo checkpoints into an audiox-turbo model directory."""
    from audiox_turbo.official.convert import convert_official

    report = convert_official(ckpt, vae, out, t5=t5, clip=clip, overwrite=overwrite)
    for line in report.unmatched:
        typer.echo(f"unmatched {line}", err=True)
    typer.echo(f"wrote {out}: {report.summary()}")
