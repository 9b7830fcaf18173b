"""The official video conditioner: CLIP frames -> temporal transformer -> token projection + sync.

spec §3.1. Parameter names mirror the released keys below
`conditioner.conditioners.video_prompt.` (CLIP under `visual_encoder_model.`). The 2500 -> 128
projection acts on a row-major *reinterpretation* of the (B, T·Q, W) features as (B·W, T·Q)
rows (§3.1 step 6, §12.8); it is implemented with `reshape`, never with a transpose.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.errors import AudioXError
from audiox_turbo.official.config import OfficialConfig
from audiox_turbo.official.temporal import TemporalTransformer

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_vision_config(config: OfficialConfig) -> Any:
    """The HF CLIPVisionConfig of the conditioner (ViT-B/32 for the released model)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=config.cond_dim,
        intermediate_size=config.clip_intermediate,
        num_hidden_layers=config.clip_layers,
        num_attention_heads=config.clip_heads,
        image_size=config.clip_image_size,
        patch_size=config.clip_patch_size,
        projection_dim=config.clip_projection_dim,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


def prepare_clip_frames(frames: Tensor, count: int, size: int) -> Tensor:
    """Frames (T,3,H,W) in 0…255 -> (count,3,size,size) as the demo feeds them (§3.1.1).

    Truncates or pads by repeating the last frame; resizes to size×size (aspect-distorting,
    bilinear with antialias, uint8 rounded) when the frames have another size.
    """
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        raise AudioXError(
            f"video frames must be (T, 3, H, W) with T ≥ 1, got {tuple(frames.shape)}"
        )
    frames = frames[:count]
    if frames.shape[0] < count:
        pad = frames[-1:].expand(count - frames.shape[0], -1, -1, -1)
        frames = torch.cat([frames, pad])
    if frames.shape[-2:] != (size, size):
        resized = F.interpolate(
            frames.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        if frames.is_floating_point():
            return resized.to(frames.dtype)
        frames = resized.round().clamp(0, 255).to(frames.dtype)
    return frames


class OfficialVideoConditioner(nn.Module):
    """Raw frames (B,T,3,S,S) in 0…255 + sync features (B,240,W) -> tokens (B,128,W).

    With `clip=False` the CLIP encoder is left out and `from_clip_features` takes its output.
    """

    def __init__(self, config: OfficialConfig, clip: bool = True) -> None:
        super().__init__()
        w, n = config.cond_dim, config.cond_tokens
        self.frames = config.video_frames
        self.sync_tokens = config.sync_tokens
        self.empty_visual_feat = nn.Parameter(torch.zeros(1, n, w))
        self.sync_weight = nn.Parameter(torch.tensor(0.0))
        self.visual_encoder_model: nn.Module | None = None
        if clip:
            from transformers import CLIPVisionModelWithProjection

            self.visual_encoder_model = CLIPVisionModelWithProjection(clip_vision_config(config))
        self.Temp_pos_embedding: nn.Parameter | None = None
        self.Temp_transformer: TemporalTransformer | None = None
        if config.temporal_depth:
            self.Temp_pos_embedding = nn.Parameter(torch.randn(1, config.video_frames, w))
            self.Temp_transformer = TemporalTransformer(
                w,
                config.temporal_depth,
                config.temporal_heads,
                config.temporal_head_dim,
                config.temporal_mlp_dim,
            )
        self.proj = nn.Linear(config.video_frames * config.clip_tokens, n)
        self.proj_sync = nn.Linear(config.sync_tokens, n)

    def forward(self, video: Tensor, sync: Tensor) -> Tensor:
        """video (B,T,3,S,S) raw 0…255, sync (B,240,W) -> (B,128,W); all-zero video -> empty."""
        if self.visual_encoder_model is None:
            raise RuntimeError("this video conditioner was built without CLIP")
        is_zero = (video == 0).flatten(1).all(dim=1)
        if bool(is_zero.all()):
            return self.empty_visual_feat.expand(video.shape[0], -1, -1)
        dtype = self.proj.weight.dtype
        mean = torch.tensor(CLIP_MEAN, device=video.device, dtype=dtype).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=video.device, dtype=dtype).view(1, 3, 1, 1)
        pixels = (video.flatten(0, 1).to(dtype) / 255.0 - mean) / std
        hidden = self.visual_encoder_model(pixel_values=pixels).last_hidden_state
        return self.from_clip_features(hidden, is_zero, sync)

    def from_clip_features(self, hidden: Tensor, is_zero: Tensor, sync: Tensor) -> Tensor:
        """CLIP last_hidden_state (B·T,Q,W), is_zero (B,), sync (B,240,W) -> (B,128,W)."""
        b = is_zero.shape[0]
        _, q, w = hidden.shape
        x = hidden.reshape(b, -1, q, w)
        t = x.shape[1]
        if self.Temp_transformer is not None and self.Temp_pos_embedding is not None:
            x = x.transpose(1, 2).reshape(b * q, t, w) + self.Temp_pos_embedding
            x = self.Temp_transformer(x).reshape(b, q, t, w).transpose(1, 2)
        features = x.reshape(b, t * q, w)
        tokens = self.proj(features.reshape(-1, t * q)).reshape(b, -1, w)
        sync_tokens = self.proj_sync(sync.reshape(-1, self.sync_tokens)).reshape(b, -1, w)
        tokens = tokens + self.sync_weight * sync_tokens
        return torch.where(is_zero[:, None, None], self.empty_visual_feat, tokens)
