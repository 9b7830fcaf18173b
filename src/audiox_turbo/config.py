"""Frozen configuration dataclasses, their JSON form, and the named presets.

Every sequence length in the system is derived here from the codec geometry and a duration,
so no module hard-codes a frame count.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from audiox_turbo.atomic import write_json_atomic

T = TypeVar("T")


@dataclass(frozen=True)
class CodecConfig:
    """Oobleck VAE geometry (Stable Audio Open layout)."""

    sample_rate: int = 44100
    audio_channels: int = 2
    channels: int = 128
    c_mults: tuple[int, ...] = (1, 2, 4, 8, 16)
    strides: tuple[int, ...] = (2, 4, 4, 8, 8)
    latent_dim: int = 64

    @property
    def downsampling(self) -> int:
        """Waveform samples per latent frame."""
        return math.prod(self.strides)

    @property
    def latent_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.downsampling

    def latent_frames(self, num_samples: int) -> int:
        """Latent frames covering `num_samples` waveform samples (rounded up)."""
        return -(-num_samples // self.downsampling)


@dataclass(frozen=True)
class ConditioningConfig:
    """Text, video and audio-prompt conditioners and the fusion module."""

    dim: int = 768
    text_encoder: str = "minilm"
    text_feature_dim: int = 384
    text_max_tokens: int = 64
    text_bytes_layers: int = 2
    video_encoder: str = "cnn"
    video_encoder_path: str | None = None
    video_feature_dim: int = 768
    video_fps: float = 5.0
    video_size: int = 224
    video_cnn_channels: tuple[int, ...] = (32, 64, 128, 256)
    video_temporal_layers: int = 2
    audio_prompt_layers: int = 1
    heads: int = 8
    fusion_experts: int = 16
    fusion_layers: int = 2


@dataclass(frozen=True)
class DenoiserConfig:
    """Native MMDiT denoiser."""

    dim: int = 1536
    depth: int = 24
    heads: int = 24
    mlp_ratio: float = 4.0
    rope_theta: float = 10000.0
    text_dropout: float = 0.1
    video_dropout: float = 0.1
    audio_dropout: float = 0.1


@dataclass(frozen=True)
class SamplerDefaults:
    """How a model generates when the caller does not say."""

    kind: str = "teacher"
    steps: int = 100
    cfg: float = 4.5
    method: str = "euler"
    shift: float = 1.0


@dataclass(frozen=True)
class ModelConfig:
    """A whole generator: codec + conditioning + denoiser + sampling defaults."""

    name: str = "base"
    variant: str = "native"
    codec: CodecConfig = field(default_factory=CodecConfig)
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    sampler: SamplerDefaults = field(default_factory=SamplerDefaults)
    max_duration: float = 60.0
    trained: bool = False

    def num_samples(self, duration: float) -> int:
        """Waveform samples for `duration` seconds: round(duration * sample_rate)."""
        return round(duration * self.codec.sample_rate)

    def latent_frames(self, duration: float) -> int:
        """Latent frames generated for `duration` seconds."""
        return self.codec.latent_frames(self.num_samples(duration))

    def video_frames(self, duration: float) -> int:
        """Video frames sampled for `duration` seconds at the conditioner's fps (at least 1)."""
        return max(1, round(duration * self.conditioning.video_fps))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and run settings shared by codec and teacher training."""

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
    timestep_sampler: str = "logit_normal"
    timestep_shift: float = 1.0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    sample_every: int = 5000
    num_workers: int = 2
    seed: int = 0


@dataclass(frozen=True)
class DistillConfig:
    """DMD (flow-matching form) + diffusion discriminator settings."""

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
    regression_weight: float = 0.0
    backward_simulation: bool = True
    t_min: float = 0.02
    t_max: float = 0.98
    t_shift: float = 1.0
    teacher_bf16: bool = False
    ema_decay: float = 0.99


def _coerce(tp: Any, value: Any) -> Any:
    """Convert a JSON value into the annotated dataclass field type."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(item, v) for v in value)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return from_dict(arg, value)
        return value
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass `cls` from a plain dict; unknown keys raise a clear ValueError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}")
    return cls(**{k: _coerce(hints[k], v) for k, v in data.items()})


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-JSON form of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def save_config(config: Any, path: str | os.PathLike[str]) -> None:
    """Serialise a config dataclass to JSON atomically."""
    write_json_atomic(path, to_dict(config))


def load_config(cls: type[T], path: str | os.PathLike[str]) -> T:
    """Read a config dataclass from JSON; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: config file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    try:
        return from_dict(cls, data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def _tiny() -> ModelConfig:
    return ModelConfig(
        name="tiny",
        codec=CodecConfig(
            sample_rate=16000,
            audio_channels=1,
            channels=4,
            c_mults=(1, 2, 4),
            strides=(4, 4, 8),
            latent_dim=8,
        ),
        conditioning=ConditioningConfig(
            dim=32,
            text_encoder="bytes",
            text_feature_dim=32,
            text_max_tokens=32,
            text_bytes_layers=1,
            video_encoder="cnn",
            video_feature_dim=32,
            video_fps=4.0,
            video_size=32,
            video_cnn_channels=(8, 16),
            video_temporal_layers=1,
            heads=2,
            fusion_experts=4,
            fusion_layers=1,
        ),
        denoiser=DenoiserConfig(dim=32, depth=2, heads=2),
        sampler=SamplerDefaults(kind="teacher", steps=8, cfg=3.0),
        max_duration=60.0,
    )


def _demo() -> ModelConfig:
    return ModelConfig(
        name="demo",
        codec=CodecConfig(
            sample_rate=16000,
            audio_channels=1,
            channels=32,
            c_mults=(1, 2, 4, 8),
            strides=(2, 4, 8, 8),
            latent_dim=32,
        ),
        conditioning=ConditioningConfig(
            dim=256,
            text_encoder="minilm",
            text_max_tokens=48,
            video_encoder="cnn",
            video_feature_dim=256,
            video_fps=5.0,
            video_size=64,
            video_cnn_channels=(32, 64, 128),
            video_temporal_layers=2,
            heads=4,
            fusion_experts=8,
            fusion_layers=1,
        ),
        denoiser=DenoiserConfig(dim=256, depth=6, heads=4),
        sampler=SamplerDefaults(kind="teacher", steps=50, cfg=3.0),
        max_duration=60.0,
    )


def _base() -> ModelConfig:
    return ModelConfig(
        name="base",
        codec=CodecConfig(),
        conditioning=ConditioningConfig(
            dim=768,
            text_encoder="t5-base",
            text_feature_dim=768,
            text_max_tokens=128,
            video_encoder="clip",
            video_feature_dim=768,
            video_fps=5.0,
            video_size=224,
            video_temporal_layers=4,
            heads=12,
            fusion_experts=64,
            fusion_layers=4,
        ),
        denoiser=DenoiserConfig(dim=1536, depth=24, heads=24),
        sampler=SamplerDefaults(kind="teacher", steps=100, cfg=6.0),
        max_duration=120.0,
    )


PRESETS: dict[str, typing.Callable[[], ModelConfig]] = {
    "tiny": _tiny,
    "demo": _demo,
    "base": _base,
}


def preset(name: str) -> ModelConfig:
    """The named model preset; an unknown name raises a ValueError listing the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
