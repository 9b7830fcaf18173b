"""Rectified-flow path maths: x_t = (1 − t)·x0 + t·ε, v = ε − x0 (t = 1 noise, t = 0 data).

Every `t` is a (B,) tensor (a 0-dim tensor or a float is broadcast to the whole batch) and is
broadcast against the trailing dimensions of the data tensors, whatever their shape.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TIMESTEP_KINDS = ("logit_normal", "uniform", "mode")


def expand_time(t: Tensor | float, like: Tensor) -> Tensor:
    """t as (B, 1, ..., 1) matching `like` (B, ...) in rank, device and dtype."""
    t = torch.as_tensor(t, device=like.device, dtype=like.dtype)
    if t.dim() == 0:
        t = t.expand(like.shape[0])
    return t.reshape(t.shape[0], *([1] * (like.dim() - 1)))


def interpolate(x0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
    """x_t = (1 − t)·x0 + t·ε; x0, ε (B, ...), t (B,)."""
    tb = expand_time(t, x0)
    return (1 - tb) * x0 + tb * eps


def velocity_target(x0: Tensor, eps: Tensor) -> Tensor:
    """Flow-matching regression target v = ε − x0, (B, ...)."""
    return eps - x0


def x0_from_velocity(x_t: Tensor, t: Tensor | float, v: Tensor) -> Tensor:
    """Data estimate x0 = x_t − t·v, (B, ...)."""
    return x_t - expand_time(t, x_t) * v


def eps_from_velocity(x_t: Tensor, t: Tensor | float, v: Tensor) -> Tensor:
    """Noise estimate ε = x_t + (1 − t)·v, (B, ...)."""
    return x_t + (1 - expand_time(t, x_t)) * v


def velocity_from_x0(x_t: Tensor, t: Tensor | float, x0: Tensor) -> Tensor:
    """v = (x_t − x0) / t, (B, ...); 0 where t = 0 (x_t = x0 there, so v is not identifiable)."""
    tb = expand_time(t, x_t)
    positive = tb > 0
    return torch.where(positive, (x_t - x0) / torch.where(positive, tb, 1), 0)


def shift_timesteps(t: Tensor, shift: float) -> Tensor:
    """SD3 shift t' = s·t / (1 + (s − 1)·t): monotone, fixes 0 and 1; s > 1 moves t to noise."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def length_shift(latent_frames: int) -> float:
    """Shift for a sequence length (the stable-audio-tools rule).

    s = exp(0.5 + 0.65·(L − 256)/(4096 − 256)): 1.65 at 256 frames, 3.16 at 4096, linear in log s
    (extrapolated outside that range).
    """
    return math.exp(0.5 + 0.65 * (latent_frames - 256) / (4096 - 256))


def sample_timesteps(
    n: int,
    kind: str = "logit_normal",
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    m: float = 0.0,
    s: float = 1.0,
    mode_scale: float = 1.29,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """(n,) training timesteps in [0, 1], then shifted.

    logit_normal: sigmoid(N(m, s²)); uniform: U(0, 1); mode: SD3's f(u) = 1 − u −
    mode_scale·(cos²(πu/2) − 1 + u) with u ~ U(0, 1) (SD3, Esser et al. 2024: s_m = 1.29).
    """
    if kind == "logit_normal":
        t = torch.sigmoid(m + s * torch.randn(n, generator=generator, device=device, dtype=dtype))
    elif kind == "uniform":
        t = torch.rand(n, generator=generator, device=device, dtype=dtype)
    elif kind == "mode":
        u = torch.rand(n, generator=generator, device=device, dtype=dtype)
        t = 1 - u - mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    else:
        raise ValueError(f"unknown timestep sampler {kind!r}; expected one of {TIMESTEP_KINDS}")
    return shift_timesteps(t.clamp(0.0, 1.0), shift)
