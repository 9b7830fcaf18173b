"""Video conditioner: frames (B, Nv, 3, H, W) -> ModalityTokens (B, Nv, dim), one token per frame.

Frame encoders: `cnn` (small trainable strided conv net), `clip` (frozen CLIP vision model
from a local dir, out of the state dict; its pooled CLS embedding per frame) or `motion`
(parameter-free luminance, colour and frame-difference features, `motion.py`). A RoPE
transformer over frames follows. Absent videos (None, present=False or all-zero frames) use a
learned null token broadcast over the frames, mask all True.

Per-frame encoder outputs (B, Nv, video_feature_dim) cached in latent shards can be given
instead of frames (`features=`); that skips the frame encoder, so it is only valid for a
frozen one (`clip`, `motion`): the trainable `cnn` encoder would be bypassed and never learn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiox_turbo.conditioning.frozen import FrozenEncoder, resolve_local_dir
from audiox_turbo.conditioning.layers import Transformer
from audiox_turbo.conditioning.motion import MOTION_FEATURE_DIM, motion_features
from audiox_turbo.conditioning.tokens import ModalityTokens
from audiox_turbo.config import ConditioningConfig
from audiox_turbo.errors import AudioXError, ModelLoadError

CLIP_PATH_ENV = "AUDIOX_TURBO_CLIP_PATH"
# CLIP image normalisation (OpenAI CLIP preprocessing constants).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_FRAME_CHUNK = 64


def frames_to_float(frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 frames in [0, 255] (or floats in [0, 1]) -> floats in [0, 1], same shape."""
    if frames.dtype == torch.uint8:
        return frames.to(dtype) / 255.0
    return frames.to(dtype)


class CnnFrameEncoder(nn.Module):
    """Strided conv net per frame: (N, 3, H, W) in [0, 1] -> (N, feature_dim)."""

    def __init__(self, channels: tuple[int, ...], feature_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
                nn.GroupNorm(1, c_out),
                nn.GELU(),
            ]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, feature_dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, feature_dim)."""
        return self.head(self.convs(frames * 2.0 - 1.0).mean(dim=(-2, -1)))


def _load_clip(path: str | None) -> nn.Module:
    import transformers

    directory: Path = resolve_local_dir(path, CLIP_PATH_ENV, "video encoder 'clip'")
    try:
        return transformers.CLIPVisionModel.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{directory}: cannot load CLIP vision model ({first_line})") from None


class ClipFrameEncoder:
    """Frozen CLIP vision model: (N, 3, H, W) in [0, 1] -> pooled CLS (N, hidden)."""

    def __init__(self, path: str | None, feature_dim: int) -> None:
        self.feature_dim = feature_dim
        self.model = FrozenEncoder("clip", lambda: _load_clip(path))

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, feature_dim) in `dtype`."""
        model = self.model.get(frames.device, dtype)
        hidden, size = model.config.hidden_size, model.config.image_size
        if hidden != self.feature_dim:
            raise ModelLoadError(
                f"CLIP hidden size {hidden} != video_feature_dim {self.feature_dim}"
            )
        param = next(model.parameters())
        mean = torch.tensor(CLIP_MEAN, device=frames.device, dtype=param.dtype)[:, None, None]
        std = torch.tensor(CLIP_STD, device=frames.device, dtype=param.dtype)[:, None, None]
        out = []
        for chunk in frames.split(CLIP_FRAME_CHUNK):
            chunk = chunk.to(param.dtype)
            if chunk.shape[-2:] != (size, size):
                chunk = F.interpolate(chunk, size=(size, size), mode="bicubic", align_corners=False)
            out.append(model(pixel_values=(chunk - mean) / std).pooler_output)
        return torch.cat(out).to(dtype)

    def __deepcopy__(self, memo: dict[int, object]) -> ClipFrameEncoder:
        return self


class VideoConditioner(nn.Module):
    """Frames (B, Nv, 3, H, W) -> ModalityTokens (B, Nv, dim), time-aligned, mask all True."""

    def __init__(self, config: ConditioningConfig) -> None:
        super().__init__()
        self.cnn: CnnFrameEncoder | None = None
        self.clip: ClipFrameEncoder | None = None
        if config.video_encoder == "cnn":
            self.cnn = CnnFrameEncoder(config.video_cnn_channels, config.video_feature_dim)
        elif config.video_encoder == "clip":
            self.clip = ClipFrameEncoder(config.video_encoder_path, config.video_feature_dim)
        elif config.video_encoder == "motion":
            if config.video_feature_dim != MOTION_FEATURE_DIM:
                raise ValueError(
                    f"video_encoder 'motion' makes {MOTION_FEATURE_DIM} features per frame; "
                    f"video_feature_dim is {config.video_feature_dim}"
                )
        else:
            raise ValueError(
                f"unknown video_encoder {config.video_encoder!r} (cnn | clip | motion)"
            )
        self.proj = nn.Linear(config.video_feature_dim, config.dim)
        self.temporal = Transformer(
            config.dim, config.heads, config.video_temporal_layers, rope=True
        )
        self.null = nn.Parameter(torch.randn(config.dim) * 0.02)

    def null_tokens(self, batch_size: int, num_frames: int) -> ModalityTokens:
        """The learned null over every frame: tokens (B, Nv, dim), mask all True, absent."""
        device = self.null.device
        return ModalityTokens(
            self.null.expand(batch_size, num_frames, -1),
            torch.ones(batch_size, num_frames, dtype=torch.bool, device=device),
            torch.zeros(batch_size, dtype=torch.bool, device=device),
        )

    @property
    def frozen_encoder(self) -> bool:
        """Whether the frame encoder is frozen, so its outputs may be cached (`clip`,
        `motion`)."""
        return self.cnn is None

    def cache_encoder(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The frame-feature function to cache in latent shards (`encode_to_shards`'s
        `encode_video`): (1, Nv, 3, H, W) uint8 -> (1, Nv, video_feature_dim); a trainable
        encoder raises AudioXError (its features change while training)."""
        if not self.frozen_encoder:
            raise AudioXError(
                "video features can only be cached for a frozen frame encoder (video_encoder "
                "'clip' or 'motion'); the trainable 'cnn' encoder needs the frames at training "
                "time"
            )
        return torch.no_grad()(self.frame_features)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N, Nv, 3, H, W) uint8 -> frame-encoder outputs (N, Nv, video_feature_dim)."""
        n, nv = frames.shape[:2]
        dtype = self.proj.weight.dtype
        if self.cnn is None and self.clip is None:
            return motion_features(frames).to(dtype)
        flat = frames_to_float(frames, dtype).flatten(0, 1)
        if self.cnn is not None:
            features = self.cnn(flat)
        else:
            assert self.clip is not None
            features = self.clip(flat, dtype)
        return features.view(n, nv, -1)

    def encode_features(
        self, features: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Frame-encoder outputs (N, Nv, video_feature_dim) -> tokens (N, Nv, dim).

        frame_mask (N, Nv) bool marks real frames; padded ones are ignored by the temporal
        transformer and come out as the null token.
        """
        n, nv = features.shape[:2]
        tokens = self.proj(features.to(self.proj.weight.dtype))
        if frame_mask is None:
            return self.temporal(tokens, torch.ones(n, nv, dtype=torch.bool, device=tokens.device))
        frame_mask = frame_mask.to(tokens.device)
        tokens = self.temporal(tokens, frame_mask)
        return torch.where(frame_mask[..., None], tokens, self.null.to(tokens.dtype))

    def encode(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (N, Nv, 3, H, W) uint8 -> tokens (N, Nv, dim); see `encode_features`."""
        return self.encode_features(self.frame_features(frames), frame_mask)

    def forward(
        self,
        frames: torch.Tensor | None,
        batch_size: int,
        num_frames: int,
        present: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
    ) -> ModalityTokens:
        """Frames (B, Nv, 3, H, W) uint8, or cached `features` (B, Nv, video_feature_dim), or
        neither -> tokens (B, Nv, dim); absent / all-zero -> null. frame_mask (B, Nv) bool marks
        real frames (padding is masked out of attention and set to the null token)."""
        result = self.null_tokens(batch_size, num_frames)
        if frame_mask is not None:
            frame_mask = frame_mask.to(self.null.device, torch.bool)
            present = frame_mask.any(1) if present is None else present & frame_mask.any(1)
        if frames is not None and features is not None:
            raise ValueError("give video frames or cached video features, not both")
        if features is not None:
            return self._from_features(
                features, batch_size, num_frames, present, result, frame_mask
            )
        if frames is None:
            return result
        if frames.ndim != 5 or frames.shape[0] != batch_size or frames.shape[2] != 3:
            raise ValueError(
                f"video must be (B={batch_size}, Nv, 3, H, W), got {tuple(frames.shape)}"
            )
        if frames.shape[1] != num_frames:
            raise ValueError(f"video has {frames.shape[1]} frames, expected {num_frames}")
        frames = frames.to(self.null.device)
        given = self._given(frames.flatten(1).ne(0).any(dim=1), present)
        index = given.nonzero().flatten()
        if index.numel() == 0:
            return result
        mask = None if frame_mask is None else frame_mask.index_select(0, index)
        tokens = self.encode(frames.index_select(0, index), mask)
        return result.replace_samples(index, tokens, mask, given)

    def _from_features(
        self,
        features: torch.Tensor,
        batch_size: int,
        num_frames: int,
        present: torch.Tensor | None,
        result: ModalityTokens,
        frame_mask: torch.Tensor | None,
    ) -> ModalityTokens:
        """Tokens from cached frame-encoder outputs (B, Nv, video_feature_dim)."""
        expected = (batch_size, num_frames, self.proj.in_features)
        if tuple(features.shape) != expected:
            raise ValueError(
                f"video features must be (B, Nv, video_feature_dim) = {expected}, "
                f"got {tuple(features.shape)}"
            )
        features = features.to(self.null.device)
        given = self._given(features.flatten(1).ne(0).any(dim=1), present)
        index = given.nonzero().flatten()
        if index.numel() == 0:
            return result
        mask = None if frame_mask is None else frame_mask.index_select(0, index)
        tokens = self.encode_features(features.index_select(0, index), mask)
        return result.replace_samples(index, tokens, mask, given)

    def _given(self, nonzero: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        """Per-sample presence (B,) bool: non-zero input and, when given, `present`."""
        return nonzero if present is None else nonzero & present.to(nonzero.device)
