"""The model's architecture (frozen dataclasses), the named presets, and the one JSON scheme.

Every config in the project (this module's, the training run's in `train/run_config.py`, the
official variant's, the judge's) is a frozen dataclass read by `from_dict` / `load_config` and
written by `to_dict`; value checks live in each dataclass's `__post_init__` (ValueError).
Every sequence length in the system is derived here from the codec geometry and a duration,
so no module hard-codes a frame count.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


CODEC_KINDS = ("oobleck", "istft", "mel")
ISTFT_PHASES = ("locked", "learned")


@dataclass(frozen=True)
class CodecConfig:
    """Codec geometry: the Oobleck VAE (Stable Audio Open layout, convolutions at the sample
    rate) or the iSTFT VAE (ConvNeXt over STFT frames, synthesis by inverse STFT).

    Oobleck uses `channels` (base width), `c_mults` and `strides`; istft uses `channels`
    (ConvNeXt width), `n_fft`, `hop_length`, `frames_per_latent`, the two layer counts,
    `istft_phase` (phase computed from the magnitudes, "locked", or predicted, "learned") and
    `encoder_floor` (the magnitude floor of the encoder's log-STFT input; 1e-5 in the shipped
    codec; `benchmarks/bench_codec_pitch.py` compares floors).
    mel (`codec/mel.py`: the latent is the standardised log-mel spectrogram, no network) uses
    `n_fft`, `hop_length`, `frames_per_latent`, `n_mels` and `encoder_floor` (added to the mel
    bands before the log); its latent_dim must be audio_channels·frames_per_latent·n_mels.
    `latent_scale` maps the VAE posterior to the denoiser's latents (encode multiplies, decode
    divides): 1 / RMS of the training latents, measured when a codec is exported, so that the
    flow's data and noise have the same scale.
    """

    sample_rate: int = 44100
    audio_channels: int = 2
    channels: int = 128
    c_mults: tuple[int, ...] = (1, 2, 4, 8, 16)
    strides: tuple[int, ...] = (2, 4, 4, 8, 8)
    latent_dim: int = 64
    kind: str = "oobleck"
    n_fft: int = 1024
    hop_length: int = 256
    frames_per_latent: int = 2
    encoder_layers: int = 4
    decoder_layers: int = 8
    istft_phase: str = "locked"
    encoder_floor: float = 1e-5
    n_mels: int = 80
    latent_scale: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.latent_scale) or self.latent_scale <= 0:
            raise ValueError(f"latent_scale: must be finite and > 0, got {self.latent_scale}")
        if not math.isfinite(self.encoder_floor) or self.encoder_floor <= 0:
            raise ValueError(f"encoder_floor: must be finite and > 0, got {self.encoder_floor}")
        if self.kind not in CODEC_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(CODEC_KINDS)}, got {self.kind!r}")
        if self.istft_phase not in ISTFT_PHASES:
            raise ValueError(
                f"istft_phase: expected one of {', '.join(ISTFT_PHASES)}, got {self.istft_phase!r}"
            )
        positive = ("sample_rate", "audio_channels", "channels", "latent_dim", "hop_length")
        positive += ("frames_per_latent", "encoder_layers", "decoder_layers", "n_mels")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        spectral = self.kind in ("istft", "mel")
        if spectral and (self.n_fft <= self.hop_length or self.n_fft % 2):
            raise ValueError(f"n_fft: must be even and > hop_length, got {self.n_fft}")
        if spectral and (self.n_fft - self.hop_length) % 2:
            raise ValueError(
                f"hop_length: n_fft - hop_length must be even (same padding), "
                f"got {self.n_fft} - {self.hop_length}"
            )
        stacked = self.audio_channels * self.frames_per_latent * self.n_mels
        if self.kind == "mel" and self.latent_dim != stacked:
            raise ValueError(
                f"latent_dim: a mel codec's is audio_channels·frames_per_latent·n_mels = "
                f"{stacked}, got {self.latent_dim}"
            )

    @property
    def downsampling(self) -> int:
        """Waveform samples per latent frame."""
        if self.kind in ("istft", "mel"):
            return self.hop_length * self.frames_per_latent
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
    """Text, video and audio-prompt conditioners and the fusion module.

    `beat_grid`: a tempo the text states conditions every latent frame with its beat phase
    (`conditioning/beat.py`), as the video's sync features do.
    """

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
    beat_grid: bool = False


@dataclass(frozen=True)
class DenoiserConfig:
    """Native MMDiT denoiser.

    `attend_absent`: an absent (or dropped) text or video is its learned null, attended like
    real tokens; False hides it from attention, so a batch without video or text skips that
    stream (exact: trimming only removes tokens no sample attends to).
    """

    dim: int = 1536
    depth: int = 24
    heads: int = 24
    mlp_ratio: float = 4.0
    rope_theta: float = 10000.0
    text_dropout: float = 0.1
    video_dropout: float = 0.1
    audio_dropout: float = 0.1
    attend_absent: bool = True


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


def _convert(tp: Any, value: Any, key: str) -> Any:
    """`value` (read from JSON) as annotated type `tp`; ValueError naming `key` if it is not one."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected an object, got {value!r}")
        return _from_dict(tp, value, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key)
            except ValueError:
                continue
        expected = str(tp).replace("typing.", "")
        raise ValueError(f"{key}: expected {expected}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(args) != len(value):
            raise ValueError(f"{key}: expected a list of {len(args)} items, got {value!r}")
        items = enumerate(zip(args, value, strict=True))
        return tuple(_convert(arg, item, f"{key}[{i}]") for i, (arg, item) in items)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (bool, int, float, str):
        if type(value) is not tp:
            raise ValueError(f"{key}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def _from_dict(cls: type[T], data: dict[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in data if k not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
        raise ValueError(f"unknown key {prefix + unknown[0]!r}{hint}")
    values = {k: _convert(hints[k], v, prefix + k) for k, v in data.items()}
    try:
        return cls(**values)
    except ValueError as e:
        raise ValueError(f"{prefix.rstrip('.')}: {e}" if prefix else str(e)) from None


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Config dataclass `cls` from its JSON form; missing fields take the defaults.

    An unknown key, a value of the wrong type or a value rejected by the dataclass's
    `__post_init__` raises a one-line ValueError naming the key (dotted for nested configs).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    return _from_dict(cls, data, "")


def to_dict(config: Any) -> dict[str, Any]:
    """JSON form of a config dataclass (tuples become lists); `from_dict` reads it back."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_config(cls: type[T], path: str | os.PathLike[str]) -> T:
    """Config dataclass `cls` from a JSON file; every error is one line naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: config file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    try:
        return from_dict(cls, data)
    except ValueError as e:
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
    """Sized for a 2-core CPU: the log-mel codec (80 bands, two frames per latent; no network,
    decodes 10 s in ~0.08 s on one thread), cached MiniLM text features, cached motion features
    of 25 fps video (the world's frame rate, for audio-visual timing), the beat grid of a tempo
    the prompt states (`conditioning/beat.py`), a 192 × 6 MMDiT."""
    return ModelConfig(
        name="demo",
        codec=CodecConfig(
            sample_rate=16000,
            audio_channels=1,
            latent_dim=160,
            kind="mel",
            n_fft=1024,
            hop_length=256,
            frames_per_latent=2,
            n_mels=80,
            encoder_floor=1e-3,
        ),
        conditioning=ConditioningConfig(
            dim=192,
            text_encoder="minilm",
            text_max_tokens=48,
            video_encoder="motion",
            video_feature_dim=176,  # conditioning/motion.py: MOTION_FEATURE_DIM
            video_fps=25.0,
            video_size=64,
            video_temporal_layers=2,
            heads=3,
            fusion_experts=8,
            fusion_layers=1,
            beat_grid=True,
        ),
        denoiser=DenoiserConfig(dim=192, depth=6, heads=3),
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
