"""Rotary position embeddings (RoPE), shared by the conditioners, the MMDiT and the official
network: frequencies, angles per position, and the rotation of query/key pairs."""

from __future__ import annotations

import torch


def rope_frequencies(
    head_dim: int, theta: float, device: torch.device | None = None
) -> torch.Tensor:
    """Rotary angular frequencies theta^(-2i/d), i < d/2: (head_dim // 2,) float32."""
    i = torch.arange(0, head_dim // 2, device=device, dtype=torch.float32)
    return theta ** (-2.0 * i / head_dim)


def rope_angles(positions: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of position·frequency: positions (..., N) float -> (..., N, head_dim // 2) each.

    A NaN position marks a token without position (identity rotation).
    """
    angles = positions.float().unsqueeze(-1) * freqs
    identity = torch.isnan(angles)
    angles = angles.masked_fill(identity, 0.0)
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) by the angles: x (B, H, N, D), cos/sin (B|1, N, D/2)."""
    dtype = x.dtype
    x = x.float().unflatten(-1, (-1, 2))
    x1, x2 = x[..., 0], x[..., 1]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2).to(dtype)
