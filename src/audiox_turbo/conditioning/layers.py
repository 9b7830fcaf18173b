"""Attention building blocks of the conditioners: masked attention, RoPE, transformer blocks.

Every attention goes through `F.scaled_dot_product_attention` with a boolean key mask; a query
row whose keys are all masked gets a zero output instead of NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audiox_turbo.rope import apply_rope, rope_angles, rope_frequencies


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor
) -> torch.Tensor:
    """Attention (B, H, Nq, Dh) over keys (B, H, Nk, Dh) where key_mask (B, Nk) is True.

    Samples with no valid key get zeros (no NaN).
    """
    has_key = key_mask.any(dim=-1)
    safe_mask = key_mask | ~has_key[:, None]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe_mask[:, None, None, :])
    return out * has_key[:, None, None, None].to(out.dtype)


def rope_sequence(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Rotary positions 0..N-1 applied to x (B, H, N, Dh) (the denoiser's interleaved RoPE)."""
    positions = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
    cos, sin = rope_angles(positions.unsqueeze(0), rope_frequencies(x.shape[-1], theta, x.device))
    return apply_rope(x, cos, sin)


class Attention(nn.Module):
    """Multi-head (self or cross) attention; optional RoPE on queries and keys."""

    def __init__(self, dim: int, heads: int, rope: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.rope = rope
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        """Queries x (B, Nq, dim) attend to context (B, Nk, dim) where context_mask (B, Nk)."""
        q = self._split(self.q(x))
        k, v = (self._split(t) for t in self.kv(context).chunk(2, dim=-1))
        if self.rope:
            q, k = rope_sequence(q), rope_sequence(k)
        out = masked_attention(q, k, v, context_mask)
        return self.out(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    """Two-layer GELU MLP (B, N, dim) -> (B, N, dim)."""

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        hidden = int(dim * ratio)
        super().__init__(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        )


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + MLP block over (B, N, dim) with a key mask (B, N)."""

    def __init__(self, dim: int, heads: int, rope: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, rope=rope)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, dim), mask (B, N) bool -> (B, N, dim)."""
        h = self.norm1(x)
        x = x + self.attn(h, h, mask)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of `layers` TransformerBlocks and a final LayerNorm over (B, N, dim)."""

    def __init__(self, dim: int, heads: int, layers: int, rope: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, rope=rope) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, dim), mask (B, N) bool -> (B, N, dim)."""
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)
