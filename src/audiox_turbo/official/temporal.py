"""The temporal self-attention transformer of the video conditioner (SA_Transformer, §3.1.3).

Parameter names mirror the released `Temp_transformer.*` keys: per layer `layers.{i}.0` is the
pre-norm attention, `layers.{i}.1` the pre-norm feed-forward; a final LayerNorm `norm`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

_NORM_EPS = 1e-5


class SelfAttention(nn.Module):
    """Multi-head attention with inner width heads·head_dim ≠ dim; (B,T,D) -> (B,T,D)."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * head_dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        q, k, v = (
            part.view(b, t, self.heads, -1).transpose(1, 2) for part in self.to_qkv(x).chunk(3, -1)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    """Linear -> exact GELU -> Linear (indices 0 and 3 as in the checkpoint); (B,T,D) -> (B,T,D)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PreNorm(nn.Module):
    """fn(LayerNorm(x)) (the residual is added by the caller); (B,T,D) -> (B,T,D)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=_NORM_EPS)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class TemporalTransformer(nn.Module):
    """Pre-norm transformer over time with a final LayerNorm; (B,T,D) -> (B,T,D)."""

    def __init__(self, dim: int, depth: int, heads: int, head_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(dim, SelfAttention(dim, heads, head_dim)),
                    PreNorm(dim, FeedForward(dim, mlp_dim)),
                ]
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        for attention, feed_forward in self.layers:
            x = x + attention(x)
            x = x + feed_forward(x)
        return self.norm(x)
