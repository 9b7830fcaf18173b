"""Joint-attention MMDiT blocks: per-stream weights, one attention over all streams.

Follows the SD3 / MMAudio joint block (SD3, MMAudio): each stream has its own
adaLN-Zero modulation, QKV, q/k RMSNorm, output projection and MLP; attention runs once over
the concatenation of the streams, with rotary positions shared by time-aligned streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audiox_turbo.model.layers import MLP, AdaLNModulation, RMSNorm, modulate
from audiox_turbo.rope import apply_rope


@dataclass
class Stream:
    """One token stream entering a joint block.

    x: (B, N, dim) tokens; c: (B, dim) or (B, N, dim) modulation condition;
    cos/sin: (B|1, N, head_dim/2) rotary tables; mask: (B, N) bool, True = attend to it.
    """

    x: torch.Tensor
    c: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    mask: torch.Tensor


class StreamWeights(nn.Module):
    """The per-stream half of a joint block: modulation, QKV, q/k norms, output and MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, pre_only: bool) -> None:
        super().__init__()
        self.heads = heads
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = AdaLNModulation(dim, 2 if pre_only else 6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = RMSNorm(dim // heads)
        self.k_norm = RMSNorm(dim // heads)
        if not pre_only:
            self.proj = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.mlp = MLP(dim, mlp_ratio)

    def qkv_heads(
        self, s: Stream
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Modulated, normalised, rotated q, k, v: each (B, heads, N, head_dim)."""
        mod = self.modulation(s.c)
        y = modulate(self.norm1(s.x), mod[0], mod[1])
        q, k, v = self.qkv(y).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        q = apply_rope(self.q_norm(q), s.cos, s.sin)
        k = apply_rope(self.k_norm(k), s.cos, s.sin)
        return q, k, v, mod

    def post_attention(
        self, x: torch.Tensor, attn: torch.Tensor, mod: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """Gated residuals of the attention output and the modulated MLP: (B, N, dim)."""
        _, _, gate1, shift2, scale2, gate2 = mod
        x = x + gate1 * self.proj(attn)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class JointBlock(nn.Module):
    """One MMDiT block over several streams; the first stream is the latent (always updated).

    With `context_pre_only` the other streams only provide keys/values (last block).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        streams: int,
        mlp_ratio: float = 4.0,
        context_pre_only: bool = False,
    ) -> None:
        super().__init__()
        self.streams = nn.ModuleList(
            StreamWeights(dim, heads, mlp_ratio, pre_only=context_pre_only and i > 0)
            for i in range(streams)
        )

    def forward(self, streams: list[Stream]) -> list[torch.Tensor]:
        """Tokens of every stream after the block (pre-only streams are returned unchanged)."""
        parts = [w.qkv_heads(s) for w, s in zip(self.streams, streams, strict=True)]
        q = torch.cat([p[0] for p in parts], dim=2)
        k = torch.cat([p[1] for p in parts], dim=2)
        v = torch.cat([p[2] for p in parts], dim=2)
        key_mask = torch.cat([s.mask for s in streams], dim=1)[:, None, None, :]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        attn = attn.transpose(1, 2).flatten(2)
        lengths = [s.x.shape[1] for s in streams]
        out = []
        for w, s, p, a in zip(
            self.streams, streams, parts, attn.split(lengths, dim=1), strict=True
        ):
            out.append(s.x if w.pre_only else w.post_attention(s.x, a, p[3]))
        return out
