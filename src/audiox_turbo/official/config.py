"""OfficialConfig: sizes of the released AudioX-Turbo network, and the presets.

The released network fixes its sequence lengths (spec §0): 236 latent frames out,
a 215-frame audio prompt, 50 CLIP frames (10 s at 5 fps), 240 sync tokens and 3×128
conditioning tokens. `official_tiny` keeps every fixed length and shrinks the widths to the
sizes of the parity fixtures.
"""

from __future__ import annotations

import json
import os
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.config import CodecConfig, from_dict, to_dict
from audiox_turbo.errors import ModelLoadError

VARIANT = "official"


@dataclass(frozen=True)
class SynchformerConfig:
    """Sizes of Synchformer's video tower (MotionFormer ViT with divided space-time attention)
    and of the frames it reads; the defaults are the released ones (ViT-B/16, 16-frame
    segments at stride 8, 25 fps, 224 px)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: int = 4
    image_size: int = 224
    patch_size: int = 16
    patch_size_temp: int = 2
    temporal_resolution: int = 8
    segment_stride: int = 8
    agg_heads: int = 12
    agg_feedforward: int = 3072
    layer_norm_eps: float = 1e-6
    fps: float = 25.0
    seconds: float = 10.0

    def __post_init__(self) -> None:
        for name, width, heads in (
            ("num_heads", self.embed_dim, self.num_heads),
            ("agg_heads", self.embed_dim, self.agg_heads),
        ):
            if heads < 1 or width % heads:
                raise ValueError(f"embed_dim {width} is not divisible by {name} {heads}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if not 0 < self.segment_stride <= self.segment_frames:
            raise ValueError(
                f"segment_stride must be in 1..{self.segment_frames}, got {self.segment_stride}"
            )

    @property
    def segment_frames(self) -> int:
        """Frames per segment: temporal tokens times the temporal patch size (16)."""
        return self.temporal_resolution * self.patch_size_temp

    @property
    def frames(self) -> int:
        """Frames read from a video: `seconds` at `fps` (250)."""
        return round(self.seconds * self.fps)

    @property
    def tokens(self) -> int:
        """Feature tokens of one clip: temporal tokens per segment times segments (240)."""
        return self.temporal_resolution * self.segments(self.frames)

    @property
    def patches_per_frame(self) -> int:
        """Spatial patches per frame (196)."""
        return (self.image_size // self.patch_size) ** 2

    def segments(self, frames: int) -> int:
        """Segments cut from `frames` frames (30 for 250); frames past the last one are unused."""
        return max(0, (frames - self.segment_frames) // self.segment_stride + 1)


@dataclass(frozen=True)
class OfficialConfig:
    """Every size of the official network (names follow the official spec)."""

    name: str = "official"
    variant: str = VARIANT
    codec: CodecConfig = field(default_factory=CodecConfig)
    cond_dim: int = 768
    cond_tokens: int = 128
    latent_frames: int = 236
    text_max_tokens: int = 128
    text_encoder: str | None = None
    synchformer: SynchformerConfig | None = None
    video_frames: int = 50
    clip_image_size: int = 224
    clip_patch_size: int = 32
    clip_layers: int = 12
    clip_heads: int = 12
    clip_intermediate: int = 3072
    clip_projection_dim: int = 512
    sync_tokens: int = 240
    temporal_depth: int = 4
    temporal_heads: int = 16
    temporal_head_dim: int = 64
    temporal_mlp_dim: int = 3072
    prompt_latent_frames: int = 215
    prompt_samples: int = 441000
    prompt_mask_min: float = 0.25
    prompt_mask_max: float = 0.75
    fusion_experts: int = 64
    fusion_heads: int = 24
    fusion_layers: int = 8
    fusion_mlp_ratio: int = 4
    dit_dim: int = 1536
    dit_depth: int = 24
    dit_heads: int = 64
    dit_mlp_ratio: int = 4
    timestep_features: int = 128
    rope_theta: float = 10000.0
    steps: int = 4
    cfg: float = 1.0

    def __post_init__(self) -> None:
        if self.variant != VARIANT:
            raise ValueError(f"OfficialConfig.variant must be {VARIANT!r}, got {self.variant!r}")
        if self.dit_dim % self.dit_heads:
            raise ValueError(
                f"dit_dim {self.dit_dim} is not divisible by dit_heads {self.dit_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head dim, got {self.head_dim}")
        sync = self.synchformer
        if sync is not None and (sync.embed_dim, sync.tokens) != (self.cond_dim, self.sync_tokens):
            raise ValueError(
                f"synchformer gives ({sync.tokens}, {sync.embed_dim}) features per clip; "
                f"the video conditioner takes ({self.sync_tokens}, {self.cond_dim})"
            )

    @property
    def head_dim(self) -> int:
        """Attention head width of the DiT (24 in the released model)."""
        return self.dit_dim // self.dit_heads

    @property
    def sequence_length(self) -> int:
        """DiT sequence: the time token followed by the latent frames (237)."""
        return self.latent_frames + 1

    @property
    def cond_sequence(self) -> int:
        """Fused conditioning tokens fed to the DiT: text, video, audio (384)."""
        return 3 * self.cond_tokens

    @property
    def ffn_hidden(self) -> int:
        """SwiGLU width: int(2·mlp_ratio·dim/3) rounded up to a multiple of 256 (4096)."""
        return -(-int(2 * self.dit_mlp_ratio * self.dit_dim / 3) // 256) * 256

    @property
    def clip_tokens(self) -> int:
        """CLIP tokens per frame: CLS + patches (50)."""
        return (self.clip_image_size // self.clip_patch_size) ** 2 + 1

    @property
    def num_samples(self) -> int:
        """Waveform samples decoded from the fixed latent length (483328)."""
        return self.latent_frames * self.codec.downsampling

    @property
    def duration(self) -> float:
        """Seconds of audio every generation produces (10.96 s)."""
        return self.num_samples / self.codec.sample_rate

    def accepts_duration(self, seconds: float) -> bool:
        """True if `seconds` maps to exactly `latent_frames` frames (floor, as the official)."""
        samples = round(seconds * self.codec.sample_rate)
        return samples // self.codec.downsampling == self.latent_frames

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write config.json atomically (with "variant": "official")."""
        write_json_atomic(path, to_dict(self))

    @staticmethod
    def load(path: str | os.PathLike[str]) -> OfficialConfig:
        """Read a config.json written by `save`; errors name the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return from_dict(OfficialConfig, data)
        except FileNotFoundError:
            raise ModelLoadError(f"{path}: config.json not found") from None
        except (ValueError, TypeError) as e:
            raise ModelLoadError(f"{path}: invalid official config ({e})") from None


def _official() -> OfficialConfig:
    return OfficialConfig()


def _official_tiny() -> OfficialConfig:
    return OfficialConfig(
        name="official_tiny",
        codec=CodecConfig(channels=8, c_mults=(1, 2), strides=(2, 4), latent_dim=64),
        cond_dim=32,
        text_max_tokens=128,
        video_frames=10,
        clip_image_size=32,
        clip_patch_size=16,
        clip_layers=1,
        clip_heads=2,
        clip_intermediate=64,
        clip_projection_dim=16,
        temporal_depth=2,
        temporal_heads=4,
        temporal_head_dim=16,
        temporal_mlp_dim=64,
        prompt_latent_frames=64,
        prompt_samples=512,
        fusion_experts=4,
        fusion_heads=4,
        fusion_layers=1,
        dit_dim=96,
        dit_depth=2,
        dit_heads=4,
    )


OFFICIAL_PRESETS: dict[str, typing.Callable[[], OfficialConfig]] = {
    "official": _official,
    "official_tiny": _official_tiny,
}


def official_preset(name: str, **overrides: typing.Any) -> OfficialConfig:
    """The named official preset, optionally with fields replaced."""
    try:
        config = OFFICIAL_PRESETS[name]()
    except KeyError:
        known = ", ".join(OFFICIAL_PRESETS)
        raise ValueError(f"unknown official preset {name!r}; known: {known}") from None
    return replace(config, **overrides) if overrides else config
