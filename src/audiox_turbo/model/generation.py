"""The one generation path of the native model: CFG against the learned nulls, seeded noise,
and the flow sampler. `AudioXTurbo.__call__`, the teacher's and the student's validation
samples and the DMD real score all run these functions, so what training shows is what
`generate` makes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from audiox_turbo.conditioning.conditioner import Conditioner, Conditions
from audiox_turbo.flow.sampling import (
    NFECounter,
    NoiseFn,
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


def grouped_noise(shape: tuple[int, ...], seeds: Sequence[int], device: torch.device) -> Tensor:
    """Noise (B, ...) whose B rows split into len(seeds) equal groups, group g drawn from
    `seeded_noise` with seeds[g]: each group gets exactly what it would get on its own."""
    b, groups = shape[0], len(seeds)
    if groups < 1 or b % groups:
        raise ValueError(f"{b} rows cannot be split into {groups} equal seed groups")
    rows = (b // groups, *shape[1:])
    return torch.cat([seeded_noise(rows, seed, device) for seed in seeds])


def grouped_renoise(seeds: Sequence[int], device: torch.device) -> NoiseFn:
    """The student's fresh noise per seed group: group g from a generator on `device` seeded
    with seeds[g] + 1 (one group: the same draws as one generator over the whole batch)."""
    generators = [torch.Generator(device).manual_seed(seed + 1) for seed in seeds]

    def draw(x: Tensor) -> Tensor:
        rows = (x.shape[0] // len(generators), *x.shape[1:])
        return torch.cat(
            [torch.randn(rows, generator=g, device=x.device, dtype=x.dtype) for g in generators]
        )

    return draw


def sample_latents(
    denoiser: DenoiserCall,
    conditioner: Conditioner,
    cond: Conditions,
    settings: SamplerSettings,
    seed: int | Sequence[int],
    duration: float,
    callback: ProgressCallback | None = None,
) -> tuple[Tensor, int]:
    """Latents x0 (B, latent_dim, T) for `cond` (T from cond.prompt) and the NFE it took.

    Initial noise comes from `seed`, the student's re-noising from a generator on the device
    seeded with seed + 1. A sequence of seeds splits the batch into equal groups of rows (e.g.
    one per request in a served batch), each sampled exactly as it would be alone.
    """
    seeds = [seed] if isinstance(seed, int) else list(seed)
    b, channels, frames = cond.prompt.shape
    device = cond.pooled.device
    noise = grouped_noise((b, channels - 1, frames), seeds, device)
    velocity = conditioned_velocity(denoiser, conditioner, cond, settings.cfg, duration)
    counter = NFECounter(velocity, nfe_per_forward=2 if settings.guided else 1)
    renoise = grouped_renoise(seeds, device)
    return sample(counter, noise, settings, renoise, callback), counter.nfe
