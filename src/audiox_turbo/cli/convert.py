"""`audiox-turbo convert official`: released AudioX-Turbo files -> an official model dir;
`audiox-turbo convert synchformer`: add the Synchformer video extractor to one;
`audiox-turbo convert half`: a native model dir with half-precision weight files.

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
    synchformer: str | None = typer.Option(
        None,
        "--synchformer",
        help="Synchformer checkpoint (synchformer_state_dict.pth): sync features from --video.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out dir."),
) -> None:
    """Convert the released AudioX-Turbo checkpoints into an audiox-turbo model directory."""
    from audiox_turbo.official.convert import convert_official

    report = convert_official(
        ckpt, vae, out, t5=t5, clip=clip, overwrite=overwrite, synchformer=synchformer
    )
    for line in report.unmatched:
        typer.echo(f"unmatched {line}", err=True)
    typer.echo(f"wrote {out}: {report.summary()}")


@app.command()
def synchformer(
    checkpoint: str = typer.Option(
        ..., "--synchformer", help="Synchformer checkpoint (synchformer_state_dict.pth)."
    ),
    model: str = typer.Option(..., "--model", "-m", help="Official model directory to extend."),
) -> None:
    """Add Synchformer's video extractor to a converted official model directory."""
    from audiox_turbo.official.convert import add_synchformer

    report = add_synchformer(model, checkpoint)
    typer.echo(f"wrote {model}: {report.summary()}")


@app.command()
def half(
    model: str = typer.Argument(..., help="Native model directory."),
    out: str = typer.Option(..., "--out", "-o", help="Model directory to write."),
    components: str = typer.Option(
        "conditioning,denoiser", help="Components stored in float16 (the rest stay float32)."
    ),
) -> None:
    """Copy MODEL with the named components' weights in float16 (loaded back as float32)."""
    from audiox_turbo.model_dir import save_half_precision

    names = tuple(name.strip() for name in components.split(",") if name.strip())
    size = save_half_precision(model, out, names)
    typer.echo(f"wrote {out} ({size / 2**20:.1f} MiB)")
