"""Evaluation commands: `eval`, `bench`, `benchmark world` and `judge train | accuracy`.

Only typer is imported here; torch and the rest load inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

benchmark_app = typer.Typer(help="Benchmarks on the embedded world.", no_args_is_help=True)
judge_app = typer.Typer(help="The world judge (evaluation classifier).", no_args_is_help=True)


def eval_command(
    gen: Path = typer.Option(..., "--gen", help="Folder of generated audio files."),
    ref: Path = typer.Option(..., "--ref", help="Folder of reference audio or a .jsonl manifest."),
    embedder: str = typer.Option("judge", help="judge | vggish | panns | passt | clap"),
    checkpoint: Path | None = typer.Option(
        None, help="Embedder checkpoint (judge: the shipped weights when omitted)."
    ),
    metrics: str | None = typer.Option(
        None, help="Comma list of fd,fad_inf,kad,kl,is,clap (default: fd,kad + kl,is if a tagger)."
    ),
    clap_checkpoint: Path | None = typer.Option(None, help="LAION-CLAP checkpoint for clap."),
    out: Path = typer.Option(Path("eval_report"), "--out", "-o", help="Report folder."),
    device: str = typer.Option("cpu", help="cpu | cuda | mps"),
    plots: bool = typer.Option(True, help="Write metrics.png and spectrograms.png."),
) -> None:
    """Score generated audio against references: report.json, report.md and plots."""
    from audiox_turbo.eval.report import evaluate, parse_metrics

    report = evaluate(
        gen,
        ref,
        out,
        embedder_name=embedder,
        checkpoint=checkpoint,
        metric_names=parse_metrics(metrics),
        clap_checkpoint=clap_checkpoint,
        device=device,
        plots=plots,
    )
    for name, value in report["metrics"].items():
        typer.echo(f"{name:>14}: {value:.6g}")
    typer.echo(f"wrote {out / 'report.json'} and {out / 'report.md'}")


def bench_command(
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model directory or preset name (default: the shipped model)."
    ),
    steps: list[str] = typer.Option(["4,100"], help="Step counts, e.g. 4,100."),
    cfg: list[str] = typer.Option(["1,4.5"], help="Guidance per step count (1 = student)."),
    duration: float | None = typer.Option(
        None, help="Seconds of audio per generation (default: 10, or the model's fixed length)."
    ),
    repeats: int = typer.Option(3, help="Timed runs per setting (after one warm-up)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps"),
    out: Path = typer.Option(Path("bench.json"), "--out", "-o", help="JSON results file."),
) -> None:
    """Time NFE, latency and real-time factor (teacher with CFG vs few-step student)."""
    from audiox_turbo.atomic import write_json_atomic
    from audiox_turbo.eval.bench import (
        pair_settings,
        parse_numbers,
        time_generation,
        timing_json,
        timing_table,
    )
    from audiox_turbo.loader import default_model, load

    settings = pair_settings(parse_numbers(steps, int), parse_numbers(cfg, float))
    pipe = load(model or default_model(), device=device)
    rows = time_generation(pipe, settings, duration, repeats)
    typer.echo(timing_table(rows), nl=False)
    write_json_atomic(out, timing_json(rows, pipe.config.name))
    typer.echo(f"wrote {out}")


@benchmark_app.command("world")
def world_command(
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model directory or preset name (default: the shipped model)."
    ),
    steps: int | None = typer.Option(None, help="Sampling steps (default: the model's)."),
    cfg: float | None = typer.Option(None, help="Guidance scale (default: the model's)."),
    method: str | None = typer.Option(
        None, help="euler | heun | student (default: the model's own sampler)."
    ),
    clips: int = typer.Option(8, "--clips", help="Prompts per task."),
    tasks: str | None = typer.Option(
        None, "--tasks", help="Comma-separated tasks to score, e.g. T2A,T2M (default: all)."
    ),
    data: Path | None = typer.Option(
        None, help="World test split (folder or manifest); generated under --out when omitted."
    ),
    duration: float = typer.Option(5.0, help="Clip length of a generated world split."),
    sources: str = typer.Option(
        "auto", help="Generated world: real, synthetic or auto (real if its sources are present)."
    ),
    judge: Path | None = typer.Option(None, help="Judge directory (default: the shipped one)."),
    clap_checkpoint: Path | None = typer.Option(None, help="LAION-CLAP checkpoint (CLAP column)."),
    out: Path = typer.Option(Path("world_benchmark"), "--out", "-o", help="Output folder."),
    seed: int = typer.Option(0, help="Generation seed."),
    samples: int = typer.Option(
        1, help="Generations per prompt (one batch): steadier FD, class share and accuracy."
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps"),
) -> None:
    """Generate the world test prompts for every task and score them with the judge: OUT holds
    world_benchmark.json / .md, world_clips.jsonl (per clip) and world_embeddings.npz (the
    judge's embeddings of references and generations)."""
    from audiox_turbo.data.manifest import manifest_root, read_manifest
    from audiox_turbo.errors import AudioXError
    from audiox_turbo.eval.judge import load_judge_embedder, resolve_manifest
    from audiox_turbo.eval.world_benchmark import (
        ensure_world,
        markdown_table,
        parse_tasks,
        run_world_benchmark,
        select_prompts,
    )
    from audiox_turbo.loader import default_model, load

    if clips < 1:
        raise AudioXError(f"--clips {clips}: must be >= 1")
    if samples < 1:
        raise AudioXError(f"--samples {samples}: must be >= 1")
    chosen = parse_tasks(tasks)
    scorer = load_judge_embedder(judge)
    clap = None
    if clap_checkpoint is not None:
        from audiox_turbo.eval.embedders import get_embedder

        clap = get_embedder("clap", clap_checkpoint)
    pipe = load(model or default_model(), device=device)
    if data is None:
        manifest = ensure_world(out / "world_test", clips, duration, sources=sources)
    else:
        manifest = resolve_manifest(data, "test")
    prompts = select_prompts(read_manifest(manifest), manifest_root(manifest), clips, chosen)
    report = run_world_benchmark(
        pipe, prompts, out, steps, cfg, seed, scorer, clap, method=method, samples=samples
    )
    typer.echo(markdown_table(report["rows"]), nl=False)
    typer.echo(f"wrote {out / 'world_benchmark.json'}")


@judge_app.command("train")
def judge_train_command(
    data: list[Path] = typer.Option(
        ..., "--data", help="World train split: folder or manifest (repeat to mix worlds)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Judge output folder."),
    epochs: int = typer.Option(16, help="Training epochs."),
    batch_size: int = typer.Option(32, help="Clips per batch."),
    lr: float = typer.Option(3e-3, help="Peak learning rate (one-cycle)."),
    crop: float = typer.Option(2.0, help="Random training crop in seconds."),
    init: Path | None = typer.Option(
        None, help="Start from this judge's trunk (folder); its heads are not used."
    ),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train the world judge (make a split first with `audiox-turbo data world`)."""
    from audiox_turbo.eval.judge import train_judge_on_manifest

    def report(epoch: int, loss: float, accuracy: float) -> None:
        typer.echo(f"epoch {epoch + 1}/{epochs}: loss {loss:.4f}, class accuracy {accuracy:.3f}")

    path, history = train_judge_on_manifest(
        data, out, epochs, batch_size, lr, seed, report, crop_seconds=crop, init=init
    )
    typer.echo(f"wrote {path} ({history.seconds:.0f} s)")


@judge_app.command("accuracy")
def judge_accuracy_command(
    data: Path = typer.Option(..., "--data", help="World test split: folder or manifest."),
    checkpoint: Path | None = typer.Option(None, help="Judge folder (default: the shipped one)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write the table as JSON."),
) -> None:
    """Accuracy of each judge head and measurement on a labelled world split."""
    from audiox_turbo.atomic import write_json_atomic
    from audiox_turbo.eval.judge import judge_accuracy, load_judge_embedder, resolve_manifest

    result = judge_accuracy(load_judge_embedder(checkpoint), resolve_manifest(data, "test"))
    for name, value in result.items():
        typer.echo(
            f"{name:>24}: {value:.4g}" if isinstance(value, float) else f"{name:>24}: {value}"
        )
    if out is not None:
        write_json_atomic(out, result)
