"""The `audiox-turbo` command line. Heavy imports (torch, transformers) happen inside commands."""

from __future__ import annotations

import sys

import typer

from audiox_turbo.cli.models import load_model
from audiox_turbo.errors import AudioXError

app = typer.Typer(
    name="audiox-turbo",
    help="Anything-to-audio generation in 4 steps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_subcommands() -> None:
    """Sub-apps; each module imports its heavy dependencies inside its commands."""
    from audiox_turbo.cli.convert import app as official_app
    from audiox_turbo.cli.curate import app as curate_app
    from audiox_turbo.cli.data import app as data_app
    from audiox_turbo.cli.eval import bench_command, benchmark_app, eval_command, judge_app
    from audiox_turbo.cli.recipe import recipe_command
    from audiox_turbo.cli.serve import serve
    from audiox_turbo.cli.train import app as train_app
    from audiox_turbo.cli.train import distill

    app.add_typer(data_app, name="data")
    app.add_typer(curate_app, name="curate")
    app.command("eval")(eval_command)
    app.command("bench")(bench_command)
    app.add_typer(benchmark_app, name="benchmark", help="Score a model on a benchmark.")
    app.add_typer(judge_app, name="judge", help="Train or score the world judge.")
    app.add_typer(train_app, name="train", help="Train the codec or the flow-matching teacher.")
    app.command(name="distill", help="Distil a teacher into a 4-step student.")(distill)
    app.add_typer(official_app, name="convert", help="Convert other projects' checkpoints.")
    app.command(name="serve", help="Serve a model over HTTP (API + web page).")(serve)
    app.command(name="recipe", help="Train a whole model: world to benchmark.")(recipe_command)


_register_subcommands()


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except AudioXError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


def _parse_span(span: str | None) -> tuple[float, float] | None:
    if span is None:
        return None
    try:
        start, end = (float(v) for v in span.split(","))
    except ValueError:
        raise AudioXError(f"--span must be START,END in seconds, got {span!r}") from None
    if not 0 <= start < end:
        raise AudioXError(f"--span needs 0 ≤ START < END, got {span!r}")
    return start, end


def _output_paths(out: str, n: int) -> list[str]:
    from pathlib import Path

    if n == 1:
        return [out]
    p = Path(out)
    return [str(p.with_name(f"{p.stem}_{i}{p.suffix}")) for i in range(n)]


@app.command()
def generate(
    text: str | None = typer.Option(None, "--text", "-t", help="Text prompt."),
    video: str | None = typer.Option(None, "--video", "-v", help="Video (or still image) prompt."),
    video_start: float = typer.Option(0.0, help="Seconds into --video where the audio starts."),
    audio: str | None = typer.Option(None, "--audio", "-a", help="Audio prompt."),
    audio_mode: str | None = typer.Option(
        None, help="continue | inpaint | reference (default: the model's; native: continue)."
    ),
    span: str | None = typer.Option(None, help="START,END seconds: span to regenerate (inpaint)."),
    duration: float | None = typer.Option(None, "--duration", "-d", help="Seconds to generate."),
    steps: int | None = typer.Option(None, help="Sampling steps (default: the model's)."),
    cfg: float | None = typer.Option(None, help="Classifier-free guidance scale (1 = off)."),
    seed: int = typer.Option(0, help="Random seed."),
    num_outputs: int = typer.Option(1, "--num-outputs", "-n", help="Outputs per prompt."),
    method: str | None = typer.Option(None, help="euler | heun | student"),
    model: str | None = typer.Option(None, "--model", "-m", help="Model directory."),
    preset_name: str | None = typer.Option(None, "--preset", help="Preset with random weights."),
    out: str = typer.Option(
        "out.wav", "--out", "-o", help="Output .wav, .flac, .mp3 or .mp4 (needs --video)."
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16"),
    sync_features: str | None = typer.Option(
        None,
        help="Synchformer features (.npy/.safetensors) for the official model, instead of "
        "computing them from --video.",
    ),
    cuda_graphs: bool = typer.Option(
        False, "--cuda-graphs", help="Replay the denoiser as CUDA graphs (CUDA only; faster)."
    ),
    prompts: str | None = typer.Option(
        None, help="JSONL file, one request per line (the API's fields + name, video, audio)."
    ),
    out_dir: str = typer.Option("out", help="Output folder of --prompts (with manifest.jsonl)."),
    batch_size: int = typer.Option(8, help="Prompts per model call with --prompts."),
) -> None:
    """Generate audio from text, a video and/or an audio clip, or every line of --prompts."""
    from pathlib import Path

    from audiox_turbo.atomic import check_writable_dir

    if prompts is not None:
        from audiox_turbo.cli.batch import generate_prompts_file

        if text is not None or video is not None or audio is not None:
            raise AudioXError(
                "--prompts takes its prompts from the file: drop --text/--video/--audio"
            )
        generate_prompts_file(
            lambda: load_model(model, preset_name, device, dtype),
            prompts,
            out_dir,
            batch_size,
            seed,
        )
        return
    suffix = Path(out).suffix.lower()
    if suffix not in (".wav", ".flac", ".mp3", ".mp4"):
        raise AudioXError(f"{out}: output must end in .wav, .flac, .mp3 or .mp4")
    if suffix == ".mp4" and video is None:
        raise AudioXError(f"{out}: an .mp4 output needs a --video to put the audio on")
    for label, path in (("video", video), ("audio", audio)):
        if path is not None and not Path(path).is_file():
            raise AudioXError(f"{path}: {label} file not found")
    check_writable_dir(Path(out).parent)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from audiox_turbo.io.audio import save_audio

    pipe = load_model(model, preset_name, device, dtype)
    if cuda_graphs:
        pipe.enable_cuda_graphs()
    if not pipe.trained:
        typer.echo(
            f"notice: model '{pipe.config.name}' has untrained (random) weights: expect noise",
            err=True,
        )
    with Progress(
        TextColumn("[bold]sampling"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("sampling", total=None)

        def on_step(step: int, total: int) -> None:
            progress.update(task, completed=step, total=total)

        result = pipe(
            text=text,
            video=video,
            audio=audio,
            audio_mode=audio_mode,
            span=_parse_span(span),
            duration=duration,
            steps=steps,
            cfg=cfg,
            seed=seed,
            num_outputs=num_outputs,
            method=method,
            video_start=video_start,
            sync_features=sync_features,
            callback=on_step,
        )
    for path, wav in zip(_output_paths(out, num_outputs), result.waveforms, strict=True):
        if suffix == ".mp4":
            from audiox_turbo.io.video import mux_audio_onto_video

            mux_audio_onto_video(video, wav, result.sample_rate, path, start=video_start)
        else:
            save_audio(path, wav, result.sample_rate)
        typer.echo(
            f"wrote {path} ({result.duration:g} s, {result.sample_rate} Hz, {result.nfe} NFE)"
        )


@app.command()
def info(
    model: str | None = typer.Argument(
        None, help="Model directory or preset name (default: the shipped model)."
    ),
) -> None:
    """Print a model's config, its parameter counts per component and, for a trained model,
    what it was trained on (its training.json)."""
    import json

    from audiox_turbo.config import to_dict
    from audiox_turbo.loader import default_model, load
    from audiox_turbo.model_dir import training_summary

    path = model or default_model()
    pipe = load(path)
    typer.echo(json.dumps(to_dict(pipe.config), indent=2))
    for name, count in pipe.parameter_counts().items():
        typer.echo(f"{name:>14}: {count:,}")
    for line in training_summary(path):
        typer.echo(line)


if __name__ == "__main__":
    main()
