"""The one generation path of the native model: CFG against the learned nulls, seeded noise,
and the flow sampler. `AudioXTurbo.__call__`, the teacher's and the student's validation
samples and the DMD real score all run these functions, so what training shows is what
`generate` makes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from audiox_turbo.conditioning.conditioner import Conditioner, Conditions
from audiox_turbo.flow.sampling import (
    NFECounter,
    ProgressCallback,
    SamplerSettings,
    VelocityFn,
    guided_velocity,
    sample,
)

DenoiserCall = Callable[..., Tensor]
"""`Denoiser` (or its `GraphedForward`): (x (B, D, T), t (B,), cond, x_mask=None) -> v."""


def conditioned_velocity(
    denoiser: DenoiserCall,
    conditioner: Conditioner,
    cond: Conditions,
    cfg: float,
    duration: float,
    x_mask: Tensor | None = None,
) -> VelocityFn:
    """v(x_t, t) under `cond`; with cfg ≠ 1, CFG against the learned nulls in one forward."""
    if cfg == 1.0:
        return lambda x, t: denoiser(x, t, cond, x_mask=x_mask)
    frames = cond.prompt.shape[-1]
    uncond = conditioner.unconditional(cond.batch_size, frames, duration)
    pair = Conditions.cat([cond, uncond.to(cond.pooled.device, cond.pooled.dtype)])
    pair_mask = None if x_mask is None else x_mask.repeat(2, 1)
    return guided_velocity(lambda x2, t2: denoiser(x2, t2, pair, x_mask=pair_mask), cfg)


def seeded_noise(shape: tuple[int, ...], seed: int, device: torch.device) -> Tensor:
    """Standard normal float32 noise drawn on the CPU from `seed` (device-independent values)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)


def sample_latents(
    denoiser: DenoiserCall,
    conditioner: Conditioner,
    cond: Conditions,
    settings: SamplerSettings,
    seed: int,
    duration: float,
    callback: ProgressCallback | None = None,
) -> tuple[Tensor, int]:
    """Latents x0 (B, latent_dim, T) for `cond` (T from cond.prompt) and the NFE it took.

    Initial noise comes from `seed`, the student's re-noising from a generator on the device
    seeded with seed + 1.
    """
    b, channels, frames = cond.prompt.shape
    device = cond.pooled.device
    noise = seeded_noise((b, channels - 1, frames), seed, device)
    velocity = conditioned_velocity(denoiser, conditioner, cond, settings.cfg, duration)
    counter = NFECounter(velocity, nfe_per_forward=2 if settings.guided else 1)
    renoise = torch.Generator(device).manual_seed(seed + 1)
    return sample(counter, noise, settings, renoise, callback), counter.nfe
