"""`audiox-turbo data world`: generate a split of the embedded world (imports work lazily)."""

from __future__ import annotations

from pathlib import Path

import typer


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
) -> None:
    """Generate captioned music, effects, voices and video scenes; resumes unfinished runs."""
    from audiox_turbo.data.world.generate import generate_world

    manifest = generate_world(
        out, clips, seed, split, duration, sample_rate, video_fraction, workers, progress=True
    )
    typer.echo(f"wrote {clips} clips: {manifest}")
