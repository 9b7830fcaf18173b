"""The official samplers (ARCHITECTURE.md §6) on top of the generic flow samplers.

The 4-step DMD student sampler (t = 1, .75, .5, .25; x0 = z − t·v; fresh-noise re-noising; no
CFG) and the teacher Euler sampler on t = linspace(1, 0, steps + 1) compute exactly what
`flow.sampling.sample_student` / `sample_euler` compute; what is official here is the velocity:
the MMDiT with its batched zero-condition CFG and optional `scale_phi` rescale.
"""

from __future__ import annotations

import torch
from torch import Tensor

from audiox_turbo.flow.sampling import (
    ProgressCallback,
    VelocityFn,
    sample_euler,
    sample_student,
    student_timesteps,
    teacher_timesteps,
)
from audiox_turbo.model.graphs import GraphedForward
from audiox_turbo.official.mmdit import OfficialMMDiT

VelocityNetwork = OfficialMMDiT | GraphedForward


def official_velocity(
    denoiser: VelocityNetwork, cond: Tensor, cfg_scale: float = 1.0, scale_phi: float = 0.0
) -> VelocityFn:
    """v(x_t (B,C,L), t (B,)) of the official MMDiT for a fixed fused condition (B,384,D)."""

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        return denoiser(x, t, cond, cfg_scale=cfg_scale, scale_phi=scale_phi)

    return velocity


def sample_dmd(
    denoiser: VelocityNetwork,
    noise: Tensor,
    cond: Tensor,
    steps: int = 4,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
) -> Tensor:
    """Official `sample_dmd`: noise (B,C,L) -> x0 (B,C,L) in `steps` NFE, cfg 1.

    Fresh re-noising draws come from `generator` (or the global RNG), in the official order.
    """
    velocity = official_velocity(denoiser, cond)
    return sample_student(velocity, noise, student_timesteps(steps), generator, callback)


def sample_euler_cfg(
    denoiser: VelocityNetwork,
    noise: Tensor,
    cond: Tensor,
    steps: int,
    cfg_scale: float,
    scale_phi: float = 0.0,
    callback: ProgressCallback | None = None,
) -> Tensor:
    """Official `sample_discrete_euler` with batched CFG: noise (B,C,L) -> x0 (B,C,L)."""
    velocity = official_velocity(denoiser, cond, cfg_scale, scale_phi)
    return sample_euler(velocity, noise, teacher_timesteps(steps), callback)
