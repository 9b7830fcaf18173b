"""Building blocks of the MMDiT: norms, timestep embedding, adaLN, MLP (RoPE: `rope.py`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """RMS normalisation over the last axis with a learned gain: x / rms(x) · g."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.float()).to(dtype)


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of t ∈ [0, 1] (scaled by 1000) followed by an MLP: (B,) -> (B, dim)."""

    def __init__(self, dim: int, frequency_dim: int = 256, max_period: float = 10000.0) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def sinusoidal(self, t: torch.Tensor) -> torch.Tensor:
        """cos ‖ sin of 1000·t times geometric frequencies: (B,) -> (B, frequency_dim) float32."""
        half = self.frequency_dim // 2
        freqs = torch.exp(
            -math.log(self.max_period)
            * torch.arange(half, device=t.device, dtype=torch.float32)
            / half
        )
        args = 1000.0 * t.float().unsqueeze(-1) * freqs
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        weight = self.mlp[0].weight
        return self.mlp(self.sinusoidal(t).to(weight.dtype))


class AdaLNModulation(nn.Module):
    """adaLN-Zero: SiLU + zero-initialised Linear mapping a condition to `chunks` vectors.

    c: (B, dim) or (B, N, dim) -> tuple of `chunks` tensors shaped (B, 1, dim) or (B, N, dim).
    """

    def __init__(self, dim: int, chunks: int) -> None:
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(dim, chunks * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.linear(F.silu(c))
        if out.dim() == 2:
            out = out.unsqueeze(1)
        return out.chunk(self.chunks, dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x·(1 + scale) + shift, broadcasting (B, 1|N, dim) over (B, N, dim)."""
    return x * (1 + scale) + shift


class MLP(nn.Module):
    """Two-layer feed-forward with tanh-GELU: (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
