"""The official samplers (spec §6) through the project's one CFG and sampler path.

The 4-step DMD student sampler (t = 1, .75, .5, .25; x0 = z − t·v; fresh-noise re-noising; no
CFG) and the teacher Euler sampler on t = linspace(1, 0, steps + 1) are `flow.sampling.sample`;
what is official here is the velocity: the MMDiT under `flow.sampling.guided_velocity` with the
all-zero condition as its null branch and the optional `scale_phi` rescale (§6.2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from audiox_turbo.flow.sampling import (
    ProgressCallback,
    SamplerSettings,
    VelocityFn,
    guided_velocity,
    sample,
)
from audiox_turbo.model.graphs import GraphedForward
from audiox_turbo.official.mmdit import OfficialMMDiT

VelocityNetwork = OfficialMMDiT | GraphedForward


def official_velocity(
    denoiser: VelocityNetwork, cond: Tensor, cfg_scale: float = 1.0, scale_phi: float = 0.0
) -> VelocityFn:
    """v(x_t (B,C,L), t (B,)) for a fused condition (B,384,D); CFG against all-zero `cond`."""
    if cfg_scale == 1.0:
        return lambda x, t: denoiser(x, t, cond)
    pair = torch.cat([cond, torch.zeros_like(cond)])
    return guided_velocity(lambda x2, t2: denoiser(x2, t2, pair), cfg_scale, scale_phi)


def sample_official(
    denoiser: VelocityNetwork,
    noise: Tensor,
    cond: Tensor,
    settings: SamplerSettings,
    generator: torch.Generator | None = None,
    scale_phi: float = 0.0,
    callback: ProgressCallback | None = None,
) -> Tensor:
    """noise (B,C,L) -> x0 (B,C,L): official `sample_dmd` for method "student" (re-noising
    draws from `generator`, in the official order), `sample_discrete_euler` for "euler"."""
    velocity = official_velocity(denoiser, cond, settings.cfg, scale_phi)
    return sample(velocity, noise, settings, generator, callback)
