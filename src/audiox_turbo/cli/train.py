"""The training commands: `audiox-turbo train codec|teacher` (`app`) and `audiox-turbo distill`.

Heavy imports (torch, the tasks, the pipeline) happen inside the commands.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from audiox_turbo.errors import AudioXError

if TYPE_CHECKING:
    from audiox_turbo.train.run_config import RunConfig

app = typer.Typer(
    help="Train the codec or the flow-matching teacher (launch with accelerate/torchrun for DDP).",
    no_args_is_help=True,
    add_completion=False,
)

CONFIG = typer.Option(..., "--config", help="Run JSON (configs/NAME.json).")
DATA = typer.Option(..., "--data", help="A JSONL manifest, a shard folder or an index.json.")
OUT = typer.Option(..., "--out", help="Run folder: runs/NAME.")
RESUME = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out.")
MAX_STEPS = typer.Option(None, "--max-steps", help="Stop after N steps (default: config).")
CPU = typer.Option(False, "--cpu", help="Train on the CPU even when a GPU is present.")
TEACHER = typer.Option(..., "--teacher", help="Teacher model directory (config.json + weights).")


@app.command()
def codec(
    config: Path = CONFIG,
    data: str = DATA,
    out: Path = OUT,
    resume: bool = RESUME,
    max_steps: int | None = MAX_STEPS,
    cpu: bool = CPU,
) -> None:
    """Train the codec (Oobleck or iSTFT VAE, by codec.kind): reconstruction + KL, then GAN; a
    mel codec has no network: its band statistics are measured and it is exported at once."""
    from audiox_turbo.train.codec import CodecTask, fit_mel_codec
    from audiox_turbo.train.run_config import load_run_config

    run = load_run_config(config)
    model_config = run.model_config()
    dataset, collate = _clip_dataset(run, data, video=False)
    if model_config.codec.kind == "mel":
        if not hasattr(dataset, "__len__"):
            raise AudioXError(f"{data}: a mel codec's statistics need a JSONL manifest")
        export = out / "model"
        try:
            fit_mel_codec(model_config, dataset, collate, run.codec.statistics_clips, export)
        except ValueError as e:
            raise AudioXError(f"{data}: {e}") from None
        typer.echo(f"mel codec: band statistics measured; model exported to {export}")
        return
    task = CodecTask(
        model_config,
        run.codec,
        validation_batch=_validation_batch(dataset, collate, run.codec.validation_clips),
        vae=_pretrained(run.model).codec if _is_model_dir(run.model) else None,
        seed=run.train.seed,
    )
    _fit_run(task, run, out, dataset, collate, resume, max_steps, cpu)


@app.command()
def teacher(
    config: Path = CONFIG,
    data: str = DATA,
    out: Path = OUT,
    resume: bool = RESUME,
    max_steps: int | None = MAX_STEPS,
    cpu: bool = CPU,
) -> None:
    """Train the flow-matching teacher (conditioner + denoiser) on a frozen codec."""
    from audiox_turbo.train.run_config import load_run_config
    from audiox_turbo.train.teacher import TeacherTask

    run = load_run_config(config)
    model_config = run.model_config()
    init = run.teacher.init_from or (run.model if _is_model_dir(run.model) else None)
    start = _pretrained(init) if init else None
    codec_source = run.teacher.codec_from
    codec_model = None
    if codec_source:
        trained = _pretrained(codec_source)
        measured = trained.config.codec.latent_scale
        if trained.config.codec != dataclasses.replace(model_config.codec, latent_scale=measured):
            raise AudioXError(
                f"teacher.codec_from {codec_source}: its codec ({trained.config.codec}) is not "
                f"the one of model {run.model} ({model_config.codec})"
            )
        # the codec's measured latent scale travels with it into the teacher's model
        model_config = dataclasses.replace(model_config, codec=trained.config.codec)
        codec_model = trained.codec
    if codec_model is None and start is not None:
        codec_model = start.codec
    dataset, collate = _generative_dataset(run, data, model_config)
    task = TeacherTask(
        model_config,
        run.train,
        run.teacher,
        codec=codec_model,
        conditioner=start.conditioner if start is not None else None,
        denoiser=_start_denoiser(start, model_config, init) if start is not None else None,
        validation_batch=_validation_batch(dataset, collate, run.teacher.validation_batch),
        seed=run.train.seed,
    )
    if codec_model is None:
        typer.echo("note: no trained codec given (teacher.codec_from); using a random codec")
    _fit_run(task, run, out, dataset, collate, resume, max_steps, cpu)


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
    from audiox_turbo.train.run_config import load_run_config
    from audiox_turbo.train.student import DistillTask, check_distill_config

    run = load_run_config(config)
    check_distill_config(run.distill, str(config))
    model = AudioXTurbo.from_pretrained(teacher)
    run = dataclasses.replace(run, model=str(teacher))
    dataset, collate = _generative_dataset(run, data, model.config)
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
    _fit_run(task, run, out, dataset, collate, resume, max_steps, cpu)


def _fit_run(
    task: Any,
    run: RunConfig,
    out: Path,
    dataset: Any,
    collate: Any,
    resume: bool,
    max_steps: int | None,
    cpu: bool,
) -> None:
    """Train `task` with the engine, the run's JSON written to the run folder; report the end."""
    from audiox_turbo.config import to_dict
    from audiox_turbo.train.trainer import Trainer

    trainer = Trainer(task, run.train, out, dataset, collate, run_config=to_dict(run), cpu=cpu)
    if trainer.accelerator.is_main_process:
        for note in trainer.ema_lag_notes(max_steps):
            typer.echo(f"note: {note}")
    result = trainer.fit(max_steps=max_steps, resume=resume)
    if not trainer.accelerator.is_main_process:
        return
    if result.interrupted:
        typer.echo(
            f"stopped at step {result.step}; checkpoint {result.checkpoint}; continue with --resume"
        )
    else:
        typer.echo(f"finished at step {result.step}; model exported to {trainer.paths.export}")


def _is_model_dir(path: str | None) -> bool:
    return path is not None and (Path(path) / "config.json").is_file()


def _start_denoiser(start: Any, model_config: Any, init: str) -> Any:
    """The starting model's denoiser; where `model_config` adds the beat grid, grown by its
    zero-initialised read (a one-line error if anything else differs)."""
    from audiox_turbo.model.denoiser import carry_weights

    if start.config.conditioning.beat_grid == model_config.conditioning.beat_grid:
        return start.denoiser
    try:
        return carry_weights(start.denoiser, model_config)
    except ValueError as e:
        raise AudioXError(f"teacher.init_from {init}: {e}") from None


def _pretrained(path: str) -> Any:
    from audiox_turbo.pipeline import AudioXTurbo

    return AudioXTurbo.from_pretrained(path)


def _is_latent_shards(data: str) -> bool:
    if data.endswith(".jsonl") or (Path(data).is_file() and not data.endswith(".json")):
        return False
    from audiox_turbo.data.shards import INDEX_NAME, ShardIndex

    index = data if data.endswith(".json") else str(Path(data) / INDEX_NAME)
    return Path(index).is_file() and ShardIndex.read(index).kind == "latents"


def _clip_dataset(run: RunConfig, data: str, video: bool) -> tuple[Any, Any]:
    """ClipDataset for a manifest, ShardDataset for shards; video only for the teacher."""
    from audiox_turbo.data.dataset import ClipDataset, collate

    if run.train.min_crop_seconds:
        raise AudioXError(
            f"{data}: train.min_crop_seconds works on latent shards only (`data encode`)"
        )
    model_config = run.model_config()
    cond = model_config.conditioning
    common: dict[str, Any] = dict(
        sample_rate=model_config.codec.sample_rate,
        channels=model_config.codec.audio_channels,
        crop_seconds=run.train.crop_seconds,
        video_fps=cond.video_fps if video else None,
        video_size=cond.video_size if video else None,
        seed=run.train.seed,
        tasks=list(run.teacher.tasks) if video else None,
    )
    if data.endswith(".jsonl"):
        if video and run.teacher.video_repeats > 1:
            raise AudioXError(f"{data}: teacher.video_repeats needs shards (`data shard`)")
        if video and run.teacher.group_video:
            raise AudioXError(f"{data}: teacher.group_video needs shards (`data shard`)")
        return ClipDataset(data, **common), collate
    from audiox_turbo.data.shards import ShardDataset

    repeats = run.teacher.video_repeats if video else 1
    groups = _video_groups(run) if video else 0
    return ShardDataset(data, **common, video_repeats=repeats, video_groups=groups), collate


def _video_groups(run: RunConfig) -> int:
    """Run length of the samples all with or all without video: one batch, or 0 (mixed)."""
    return run.train.batch_size if run.teacher.group_video else 0


def _latent_dataset(run: RunConfig, data: str, model_config: Any) -> tuple[Any, Any]:
    from audiox_turbo.data.dataset import collate
    from audiox_turbo.data.latents import LatentShardDataset

    frames = model_config.latent_frames(run.train.crop_seconds)
    shortest = run.train.min_crop_seconds
    dataset = LatentShardDataset(
        data,
        crop_frames=frames,
        min_crop_frames=max(1, model_config.latent_frames(shortest)) if shortest else None,
        seed=run.train.seed,
        tasks=list(run.teacher.tasks),
        video_repeats=run.teacher.video_repeats,
        video_groups=_video_groups(run),
    )
    return dataset, collate


def _generative_dataset(run: RunConfig, data: str, model_config: Any) -> tuple[Any, Any]:
    """Dataset + collate for teacher/student training: latent shards, or clips with video."""
    if _is_latent_shards(data):
        return _latent_dataset(run, data, model_config)
    return _clip_dataset(run, data, video=True)


def _validation_batch(dataset: Any, collate: Any, count: int) -> dict[str, Any] | None:
    """The first `count` samples, collated: a fixed validation batch."""
    if count <= 0:
        return None
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        items = [dataset[i] for i in range(min(count, len(dataset)))]
    else:
        items = []
        for item in dataset:
            items.append(item)
            if len(items) == count:
                break
    return collate(items) if items else None
