"""The training-run JSON (`configs/NAME.json`): model preset + TrainConfig + task sections.

Layout::

    {
      "model": "tiny",                  # preset name, or a model directory to start from
      "train": { ...TrainConfig fields... },
      "codec": { ...CodecTrainingConfig fields... },
      "teacher": { ...TeacherTrainingConfig fields... },
      "distill": { ...DistillConfig fields... }
    }

Every section is optional; missing fields take the dataclass defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from audiox_turbo.config import (
    DistillConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    load_config,
    preset,
)
from audiox_turbo.data.manifest import TASKS
from audiox_turbo.errors import AudioXError


@dataclass(frozen=True)
class CodecTrainingConfig:
    """Codec (Oobleck VAE) losses and discriminator; weights follow REFERENCES.md."""

    stft_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64, 32)
    stft_weight: float = 1.0
    stft_log_eps: float = 1e-5
    l1_weight: float = 0.1
    kl_weight: float = 1e-4
    adversarial_start: int = 10_000
    adversarial_weight: float = 0.1
    feature_matching_weight: float = 5.0
    discriminator_filters: int = 32
    discriminator_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128)
    discriminator_lr: float | None = None
    betas: tuple[float, float] = (0.8, 0.99)
    validation_clips: int = 4


@dataclass(frozen=True)
class TeacherTrainingConfig:
    """Flow-matching teacher: task mixture, codec source and validation prompts."""

    tasks: tuple[str, ...] = TASKS
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


@dataclass(frozen=True)
class RunConfig:
    """A whole training run description."""

    model: str = "tiny"
    train: TrainConfig = field(default_factory=TrainConfig)
    codec: CodecTrainingConfig = field(default_factory=CodecTrainingConfig)
    teacher: TeacherTrainingConfig = field(default_factory=TeacherTrainingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def model_config(self) -> ModelConfig:
        """The architecture: a preset, or the config.json of a model directory."""
        path = Path(self.model)
        if (path / "config.json").is_file():
            return load_config(ModelConfig, path / "config.json")
        try:
            return preset(self.model)
        except ValueError as e:
            raise AudioXError(f"model {self.model!r}: not a model directory and {e}") from None


def load_run_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read a run JSON; a missing file or bad field raises AudioXError naming the file."""
    try:
        run = load_config(RunConfig, path)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise AudioXError(str(e)) from None
    unknown = sorted(set(run.teacher.tasks) - set(TASKS))
    if unknown:
        raise AudioXError(f"{path}: teacher.tasks has unknown tasks {unknown}")
    return run


def run_config_from_dict(data: dict) -> RunConfig:
    """RunConfig from a plain dict (tests and programmatic use)."""
    return from_dict(RunConfig, data)
