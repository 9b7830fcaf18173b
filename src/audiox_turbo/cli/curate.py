"""`audiox-turbo curate collect|filter|annotate|export`: raw media → a filtered, captioned,
sharded training set, on Ray Data (local instance by default, a cluster with --address)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Curate raw recordings and videos into a captioned training set (Ray Data).",
    no_args_is_help=True,
    add_completion=False,
)
ADDRESS = typer.Option(None, "--address", help="Ray cluster address (default: a local instance).")
CPUS = typer.Option(None, "--num-cpus", help="CPUs of the local Ray instance (default: all).")
THRESHOLD = typer.Option([], "--threshold", help="NAME=VALUE filter threshold (repeatable).")


@app.command()
def collect(
    sources: list[str] = typer.Argument(..., help="Folders, files or fsspec URLs."),
    out: Path = typer.Option(..., "--out", help="Curation folder."),
    clip_seconds: float = typer.Option(10.0, help="Longest clip."),
    min_seconds: float = typer.Option(1.0, help="Shortest clip kept."),
    split: str = typer.Option("fixed", help="fixed windows, or silence (cut at silences)."),
    target_lufs: float = typer.Option(-23.0, help="Loudness of the kept clips (BS.1770)."),
    files_per_block: int = typer.Option(16, help="Source files per resumable block."),
    threshold: list[str] = THRESHOLD,
    address: str | None = ADDRESS,
    num_cpus: int | None = CPUS,
) -> None:
    """Stage 1: decode, cut, measure and filter SOURCES into OUT (resumable)."""
    from audiox_turbo.curate.collect_stage import run_collect
    from audiox_turbo.curate.engine import ray_session
    from audiox_turbo.curate.settings import CutSettings, FilterThresholds, with_overrides
    from audiox_turbo.errors import MediaError

    for src in sources:  # checked before Ray starts
        if "://" not in src and not Path(src).exists():
            raise MediaError(f"{src}: no such file or folder")
    cut = CutSettings(clip_seconds, min_seconds, split, target_lufs=target_lufs)
    thresholds = with_overrides(FilterThresholds(min_seconds=min_seconds), threshold)
    with ray_session(address, num_cpus):
        report = run_collect(sources, out, cut, thresholds, files_per_block, echo=typer.echo)
    typer.echo(f"{out}: {report['clips']} clips from {report['files']} files: {report['counts']}")


@app.command("filter")
def refilter_command(
    folder: Path = typer.Argument(..., help="Curation folder (after collect)."),
    threshold: list[str] = THRESHOLD,
) -> None:
    """Re-decide every clip with changed thresholds, from the recorded measurements."""
    from audiox_turbo.curate.collect_stage import refilter
    from audiox_turbo.curate.settings import FilterThresholds, with_overrides

    report = refilter(folder, with_overrides(FilterThresholds(), threshold))
    typer.echo(f"{folder}: {report['counts']}")


@app.command()
def annotate(
    folder: Path = typer.Argument(..., help="Curation folder (after collect)."),
    judge: str | None = typer.Option(None, help="Judge folder (default: the shipped judge)."),
    expert: list[str] = typer.Option([], help="KIND=DIR plug-in expert: tagger or asr."),
    llm: str | None = typer.Option(None, help="Local Hugging Face causal LM folder."),
    clap: str | None = typer.Option(
        None, help="Local CLAP folder: verify captions by audio-text similarity."
    ),
    captions: int = typer.Option(3, help="Captions per clip."),
    batch_size: int = typer.Option(8, help="Clips per model batch."),
    actors: int = typer.Option(1, help="Expert actors (model copies)."),
    actor_cpus: float = typer.Option(1.0, help="CPUs each model actor reserves."),
    min_score: float = typer.Option(0.1, help="Verifier score a caption needs."),
    address: str | None = ADDRESS,
    num_cpus: int | None = CPUS,
) -> None:
    """Stage 2: expert facts, captions and verification for FOLDER's kept clips."""
    from audiox_turbo.curate.annotate_stage import run_annotate
    from audiox_turbo.curate.engine import ray_session
    from audiox_turbo.curate.experts import parse_plugins
    from audiox_turbo.curate.settings import AnnotateSettings
    from audiox_turbo.errors import AudioXError

    for flag, model in (("--llm", llm), ("--clap", clap)):
        if model is not None and not Path(model).is_dir():
            raise AudioXError(f"{flag} {model}: not a folder")
    from audiox_turbo.curate.collect_stage import DECISIONS_FILE

    if not (folder / DECISIONS_FILE).is_file():
        raise AudioXError(f"{folder}: not a collected folder (run `curate collect` first)")
    settings = AnnotateSettings(batch_size, actors, actor_cpus, captions, min_score)
    plugins = parse_plugins(expert)
    with ray_session(address, num_cpus):
        summary = run_annotate(folder, settings, judge, plugins, llm, clap, echo=typer.echo)
    typer.echo(f"{folder}: {summary}")


@app.command()
def export(
    folder: Path = typer.Argument(..., help="Curation folder (after annotate)."),
    shards: Path = typer.Option(..., "--shards", help="Output folder: shards, index, card."),
    shard_size: str = typer.Option("256MB", help="Target shard size (e.g. 256MB)."),
) -> None:
    """Write FOLDER/manifest.jsonl, WebDataset shards and the dataset card into --shards."""
    from audiox_turbo.cli.data import parse_size
    from audiox_turbo.curate.export import run_export

    stats = run_export(folder, shards, parse_size(shard_size))
    typer.echo(f"{shards}: {stats['exported']} clips in {stats['shards']} shards")
