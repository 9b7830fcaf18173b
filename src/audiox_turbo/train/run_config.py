"""The training-run JSON (`configs/NAME.json`) and the training settings it holds.

Layout::

    {
      "model": "tiny",                  # preset name, or a model directory to start from
      "train": { ...TrainConfig fields... },
      "codec": { ...CodecTrainingConfig fields... },
      "teacher": { ...TeacherTrainingConfig fields... },
      "distill": { ...DistillConfig fields... }
    }

Every section is optional; missing fields take the dataclass defaults. Each setting lives in
exactly one section: the engine's (optimiser, schedule, EMA, checkpoints) in `train`, for
every task alike, so a distillation run's student EMA decay is its `train.ema_decay`.
Read and written by the scheme of `audiox_turbo/config.py` (`from_dict` / `to_dict`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from audiox_turbo.config import ModelConfig, load_config, preset
from audiox_turbo.data.manifest import TASKS
from audiox_turbo.errors import AudioXError


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and run settings of the training engine (`train/trainer.py`), for every task.
    `export_every`: also export the (EMA) model to `exports/step-N/` every N steps (0: only the
    final `model/`), so that a later choice among them (the recipe's validation split) needs
    no checkpoint surgery. `min_crop_seconds` > 0 (latent shards): each sample keeps a random
    length between it and `crop_seconds`, the rest padding masked from attention and loss, so
    one run sees every duration in between (docs/default_model.md measures it)."""

    batch_size: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    warmup_steps: int = 1000
    schedule: str = "cosine"
    max_steps: int = 100_000
    grad_accum: int = 1
    grad_clip: float = 1.0
    precision: str = "fp32"
    ema_decay: float = 0.999
    ema_warmup: int = 1000
    crop_seconds: float = 5.0
    min_crop_seconds: float = 0.0
    timestep_sampler: str = "logit_normal"
    timestep_shift: float = 1.0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    export_every: int = 0
    log_every: int = 50
    sample_every: int = 5000
    num_workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_crop_seconds <= self.crop_seconds:
            raise ValueError(
                f"min_crop_seconds {self.min_crop_seconds} must lie in [0, crop_seconds "
                f"{self.crop_seconds}]"
            )


@dataclass(frozen=True)
class CodecTrainingConfig:
    """Codec losses (mel_weight: L1 log-mel term, off by default), discriminator, validation;
    `normalise_latents`: the export sets the codec's `latent_scale` from the validation clips;
    `freeze_encoder`: train only the decoder, on posterior means (what the latent cache holds and
    the denoiser generates), so the latent space (and every teacher or student trained on it)
    stays valid and the export keeps the codec's `latent_scale`. A mel codec (no network) is not
    trained: its band statistics are measured on `statistics_clips` training clips."""

    stft_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64, 32)
    stft_weight: float = 1.0
    stft_log_eps: float = 1e-5
    l1_weight: float = 0.1
    kl_weight: float = 1e-4
    mel_weight: float = 0.0
    adversarial_start: int = 10_000
    adversarial_weight: float = 0.1
    feature_matching_weight: float = 5.0
    discriminator_filters: int = 32
    discriminator_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128)
    discriminator_lr: float | None = None
    betas: tuple[float, float] = (0.8, 0.99)
    validation_clips: int = 4
    normalise_latents: bool = True
    freeze_encoder: bool = False
    statistics_clips: int = 1024


@dataclass(frozen=True)
class TeacherTrainingConfig:
    """Flow-matching teacher: task mixture, codec source and validation prompts.
    `video_repeats`: each clip with a video is read this many times per epoch (shards only).
    `group_video`: every batch all with or all without a video (shards only), so a denoiser
    that skips absent streams (`attend_absent` false) runs most batches without the video's."""

    tasks: tuple[str, ...] = TASKS
    video_repeats: int = 1
    group_video: bool = False
    codec_from: str | None = None
    init_from: str | None = None
    length_shift: bool = False
    validation_prompts: tuple[str, ...] = (
        "a dog barking in the rain",
        "a slow piano melody in C major",
        "footsteps on a wooden floor",
        "a church bell ringing three times",
    )
    validation_seconds: float = 2.0
    validation_steps: int = 25
    validation_cfg: float = 3.0
    validation_batch: int = 4

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"tasks: unknown tasks {unknown}; known: {', '.join(TASKS)}")
        if self.video_repeats < 1:
            raise ValueError(f"video_repeats must be >= 1, got {self.video_repeats}")


@dataclass(frozen=True)
class DistillConfig:
    """DMD (flow-matching form) + diffusion discriminator settings; checked by the distill task."""

    student_steps: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    teacher_cfg: float = 6.0
    critic_updates: int = 5
    generator_lr: float = 1e-5
    critic_lr: float = 1e-5
    dmd_weight: float = 1.0
    gan_weight: float = 1e-3
    gan_critic_weight: float = 1e-2
    gan_loss: str = "hinge"
    gan_max_t: float = 0.2
    gan_layers: tuple[int, ...] = (-1,)
    gan_batch_fraction: float = 1.0
    """The share of the batch (its first rows, at least one) whose real latents and student
    samples the discriminator reads in the critic phase: below 1 the critic's batched forward
    is that much smaller (the generator's GAN term still reads every sample)."""
    regression_weight: float = 0.0
    regression_pool: int = 32
    """Teacher ODE pairs (DMD's regression anchor) are made on the first `regression_pool`
    generator batches and then reused, as DMD precomputes its pairs (saved in checkpoints: a
    resumed run reuses them)."""
    regression_trajectory: bool = False
    """Anchor every student step, not only the first: the student at t_k, given the teacher
    ODE's state at t_k, regresses the ODE's endpoint (the map from x_t to a sample that the
    re-noising student sampler applies at each step)."""
    refine_weight: float = 0.0
    """On-policy refinement of the student's last `refine_steps` steps: its x0 from its own
    state x_t there (the backward simulation's) regresses the teacher's guided Euler ODE from
    x_t to 0, on a grid of `refine_teacher_steps` steps over [0, 1] (ceil(t · n) from t): the
    detail that one step from t loses."""
    refine_steps: int = 1
    refine_teacher_steps: int = 12
    backward_simulation: bool = True
    t_min: float = 0.02
    t_max: float = 0.98
    t_shift: float = 1.0
    teacher_bf16: bool = False


@dataclass(frozen=True)
class RunConfig:
    """A whole training run description."""

    model: str = "tiny"
    train: TrainConfig = field(default_factory=TrainConfig)
    codec: CodecTrainingConfig = field(default_factory=CodecTrainingConfig)
    teacher: TeacherTrainingConfig = field(default_factory=TeacherTrainingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def model_config(self) -> ModelConfig:
        """The architecture: a preset, the config.json of a model directory, or a model config
        JSON file (a custom architecture, e.g. a preset's config.json edited)."""
        path = Path(self.model)
        if (path / "config.json").is_file():
            path = path / "config.json"
        elif not path.is_file():
            try:
                return preset(self.model)
            except ValueError as e:
                raise AudioXError(
                    f"model {self.model!r}: not a model directory, nor a config file, and {e}"
                ) from None
        try:
            return load_config(ModelConfig, path)
        except (FileNotFoundError, ValueError) as e:
            raise AudioXError(str(e)) from None


def load_run_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read a run JSON; a missing file or a bad key or value raises AudioXError naming the file."""
    try:
        return load_config(RunConfig, path)
    except (FileNotFoundError, ValueError) as e:
        raise AudioXError(str(e)) from None
