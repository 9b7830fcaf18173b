"""Synchformer's video feature extractor: the MotionFormer ViT with divided space-time attention
that AudioX-Turbo feeds as `video_sync_frames` (spec: ../shared/official/synchformer/README.md).

A clip of T frames (25 fps, [-1, 1]) is cut into segments of 16 frames at stride 8; each
segment gives 8 tokens (one per frame pair) and the segments' tokens are concatenated, so 10 s
(250 frames) give (240, 768). Parameter names mirror the released keys below
`vfeat_extractor.`; the unused 2-D patch embedding of the release is left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.errors import AudioXError
from audiox_turbo.official.config import SynchformerConfig
from audiox_turbo.official.video import prepare_clip_frames

CHECKPOINT_PREFIX = "vfeat_extractor."
UNUSED_KEYS = ("patch_embed.proj.weight", "patch_embed.proj.bias")


def unused_shapes(config: SynchformerConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the released tensors the network never applies (the 2-D patch embedding)."""
    d, p = config.embed_dim, config.patch_size
    return dict(zip(UNUSED_KEYS, ((d, 3, p, p), (d,)), strict=True))


def normalize_sync_frames(frames: Tensor, config: SynchformerConfig) -> Tensor:
    """Frames (T,3,H,W) in 0…255 -> (frames,3,S,S) float32 in [-1,1] as the demo feeds them.

    Truncated or padded by repeating the last frame; resized (aspect-distorting, bilinear with
    antialias, uint8 rounded) when not S×S; then x/255 normalised by mean 0.5, std 0.5.
    """
    frames = prepare_clip_frames(frames, config.frames, config.image_size)
    return (frames.float() / 255.0 - 0.5) / 0.5


class PatchEmbed3d(nn.Module):
    """Tubelets of (2 frames × 16 × 16 px) -> tokens: (Bs,3,F,H,W) -> (Bs, t·h·w, D)
    in time-major order (token ti·n + hi·w + wi)."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        kernel = (config.patch_size_temp, config.patch_size, config.patch_size)
        self.proj = nn.Conv3d(3, config.embed_dim, kernel, stride=kernel)

    def forward(self, segments: Tensor) -> Tensor:
        return self.proj(segments).flatten(2).transpose(1, 2)


class DividedAttention(nn.Module):
    """Attention within groups of patch tokens plus a CLS token that sees every token.

    `across="time"`: one group per spatial position (its t tokens); `"space"`: one group per
    time index (its n tokens). Every patch query attends to [CLS, its group]. (Bs,1+N,D) ->
    (Bs,1+N,D).
    """

    def __init__(self, config: SynchformerConfig, across: str) -> None:
        super().__init__()
        if across not in ("time", "space"):
            raise ValueError(f"across must be 'time' or 'space', got {across!r}")
        self.across = across
        self.heads = config.num_heads
        self.frames = config.temporal_resolution
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)

    def _groups(self, z: Tensor) -> Tensor:
        """Patch rows (Bs,H,N,dh) -> (Bs·H, G, M, dh): G groups of M tokens."""
        bh = z.shape[0] * z.shape[1]
        z = z.unflatten(2, (self.frames, -1))  # (Bs,H,t,n,dh)
        if self.across == "time":
            z = z.transpose(2, 3)
        return z.reshape(bh, z.shape[2], z.shape[3], z.shape[4])

    def forward(self, x: Tensor) -> Tensor:
        bs, length, width = x.shape
        q, k, v = self.qkv(x).view(bs, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        cls = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (Bs,H,1,dh)
        qg, kg, vg = (self._groups(z[:, :, 1:]) for z in (q, k, v))
        groups = qg.shape[1]
        k_cls = k[:, :, :1].reshape(-1, 1, 1, k.shape[-1]).expand(-1, groups, 1, -1)
        v_cls = v[:, :, :1].reshape(-1, 1, 1, v.shape[-1]).expand(-1, groups, 1, -1)
        out = F.scaled_dot_product_attention(
            qg, torch.cat([k_cls, kg], dim=2), torch.cat([v_cls, vg], dim=2)
        )
        out = out.view(bs, self.heads, groups, out.shape[2], -1)
        if self.across == "time":
            out = out.transpose(2, 3)
        out = torch.cat([cls, out.flatten(2, 3)], dim=2)  # (Bs,H,1+N,dh)
        return self.proj(out.transpose(1, 2).reshape(bs, length, width))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        hidden = config.mlp_ratio * config.embed_dim
        self.fc1 = nn.Linear(config.embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, config.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    """Time attention (norm3), then space attention (`attn`, norm1), then the MLP (norm2);
    each pre-norm with a residual. (Bs,1+N,D) -> (Bs,1+N,D)."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        d, eps = config.embed_dim, config.layer_norm_eps
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d, eps=eps) for _ in range(3))
        self.timeattn = DividedAttention(config, "time")
        self.attn = DividedAttention(config, "space")
        self.mlp = Mlp(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.timeattn(self.norm3(x))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SpatialAggregation(nn.Module):
    """Per time index, a pre-norm encoder layer over [own CLS, the n patch tokens]; its CLS row
    is the output. (Bs, t·n, D) -> (Bs, t, D)."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        d, eps = config.embed_dim, config.layer_norm_eps
        self.frames = config.temporal_resolution
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.self_attn = nn.MultiheadAttention(d, config.agg_heads, batch_first=True)
        self.linear1 = nn.Linear(d, config.agg_feedforward)
        self.linear2 = nn.Linear(config.agg_feedforward, d)
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, tokens: Tensor) -> Tensor:
        bs = tokens.shape[0]
        rows = tokens.unflatten(1, (self.frames, -1)).flatten(0, 1)  # (Bs·t, n, D)
        s = torch.cat([self.cls_token.expand(rows.shape[0], -1, -1), rows], dim=1)
        y = self.norm1(s)
        # Only the CLS row is kept, and rows do not mix after the attention: query it alone.
        a = s[:, :1] + self.self_attn(y[:, :1], y, y, need_weights=False)[0]
        out = a + self.linear2(F.gelu(self.linear1(self.norm2(a))))
        return out[:, 0].unflatten(0, (bs, self.frames))


class SynchformerVideoEncoder(nn.Module):
    """MotionFormer video tower + spatial aggregation: segments (Bs,3,F,S,S) in [-1,1] ->
    features (Bs, t, D); `extract` runs whole clips (B,T,3,S,S) -> (B, segments·t, D)."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + config.patches_per_frame, d) * 0.02)
        self.temp_embed = nn.Parameter(torch.randn(1, config.temporal_resolution, d) * 0.02)
        self.patch_embed_3d = PatchEmbed3d(config)
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.spatial_attn_agg = SpatialAggregation(config)

    @property
    def device(self) -> torch.device:
        return self.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        return self.cls_token.dtype

    def tokens(self, segments: Tensor) -> Tensor:
        """(Bs,3,F,S,S) -> CLS + patch tokens with positions (Bs, 1 + t·n, D)."""
        patches = self.patch_embed_3d(segments)
        t = self.config.temporal_resolution
        positions = self.pos_embed[:, 1:].repeat(1, t, 1)
        positions = positions + self.temp_embed.repeat_interleave(self.config.patches_per_frame, 1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches + positions], dim=1)

    def forward(self, segments: Tensor) -> Tensor:
        """(Bs,3,F,S,S) -> (Bs, t, D)."""
        x = self.tokens(segments)
        for block in self.blocks:
            x = block(x)
        return self.spatial_attn_agg(self.norm(x[:, 1:]))

    def extract(self, video: Tensor, segment_batch: int = 32) -> Tensor:
        """Clips (B,T,3,S,S) in [-1,1] -> (B, segments·t, D), token s·t + ti for segment s.

        Segments start every `segment_stride` frames; they run `segment_batch` at a time on
        the module's device and dtype (the result does not depend on the batching).
        """
        c = self.config
        size = c.image_size
        if video.ndim != 5 or tuple(video.shape[2:]) != (3, size, size):
            raise AudioXError(
                f"synchformer input must be (B, T, 3, {size}, {size}), got {tuple(video.shape)}"
            )
        b, count = video.shape[0], c.segments(video.shape[1])
        if count < 1:
            raise AudioXError(
                f"synchformer needs at least {c.segment_frames} frames, got {video.shape[1]}"
            )
        segments = video.unfold(1, c.segment_frames, c.segment_stride)  # (B,S,3,H,W,F)
        segments = segments.permute(0, 1, 2, 5, 3, 4)  # (B,S,3,F,H,W)
        index = torch.arange(b * count)
        out = []
        for chunk in index.split(max(1, segment_batch)):
            batch = segments[chunk // count, chunk % count]
            out.append(self(batch.to(self.device, self.dtype)))
        return torch.cat(out).reshape(b, count * c.temporal_resolution, -1)
