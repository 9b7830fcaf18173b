"""Distribution Matching Distillation in flow-matching (velocity) form, DMD2 style.

Network protocol (what the teacher, the student and the fake-score network must accept):

    net(x_t, t, cond) -> v                                  x_t (B, ...), t (B,), v like x_t
    net(x_t, t, cond, return_features=True) -> (v, feats)   feats: list of (B, tokens, dim)

`cond` is opaque here. The real score with CFG is a velocity function built by the project's
one guidance path (`flow.sampling.guided_velocity`; for the native model
`model.generation.conditioned_velocity`). All losses below take plain velocity functions
(x_t, t) -> v, so the same code drives the MMDiT and the toy networks of the tests.

Every loss takes an optional frame mask (B, T) bool for samples (B, ..., T): padded frames
(False) carry no loss, and means run over valid elements only. None = every frame is valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from audiox_turbo.flow.path import (
    interpolate,
    shift_timesteps,
    velocity_target,
    x0_from_velocity,
)
from audiox_turbo.flow.sampling import VelocityFn, sample_euler, sample_student

FeatureFn = Callable[[Tensor, Tensor], tuple[Tensor, list[Tensor]]]
NORMALISER_FLOOR = 1e-6
"""Smallest DMD normaliser mean|x − x0_real| (latents are O(1))."""


class VelocityNetwork(Protocol):
    """A denoiser: velocity (B, ...) at x_t (B, ...), t (B,), and optionally its features."""

    def __call__(
        self, x_t: Tensor, t: Tensor, cond: Any, *, return_features: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]: ...


def bind_condition(net: VelocityNetwork, cond: Any) -> VelocityFn:
    """Velocity function (x_t, t) -> v of `net` under a fixed condition (no CFG, 1 NFE)."""
    return lambda x_t, t: net(x_t, t, cond)


def bind_features(net: VelocityNetwork, cond: Any) -> FeatureFn:
    """(x_t, t) -> (v, features) of `net` under a fixed condition."""
    return lambda x_t, t: net(x_t, t, cond, return_features=True)


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    """(B,) -> (B, 1, ..., 1) to broadcast against `like` (B, ...)."""
    return t.reshape(t.shape[0], *([1] * (like.dim() - 1)))


def _loss_dtype(x: Tensor) -> torch.dtype:
    """Losses are reported in at least float32."""
    return torch.promote_types(x.dtype, torch.float32)


def _frame_weight(mask: Tensor, like: Tensor) -> Tensor:
    """Mask (B, T) -> float weights (B, ..., T) shaped like `like` (B, ..., T)."""
    view = mask.reshape(mask.shape[0], *([1] * (like.dim() - 2)), mask.shape[-1])
    return view.to(device=like.device, dtype=like.dtype).expand_as(like)


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of values (B, ..., T) over the frames `mask` (B, T) marks valid (all when None)."""
    if mask is None:
        return values.mean()
    weight = _frame_weight(mask, values)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def sample_dmd_timesteps(
    n: int,
    t_min: float = 0.02,
    t_max: float = 0.98,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """(n,) noise levels for the DMD term: t_min + (t_max − t_min)·shift(u), u ~ U(0, 1)."""
    u = torch.rand(n, generator=generator, device=device)
    return t_min + (t_max - t_min) * shift_timesteps(u, shift)


def dmd_gradient(x: Tensor, x0_real: Tensor, x0_fake: Tensor, mask: Tensor | None = None) -> Tensor:
    """DMD2 gradient (x0_fake − x0_real) / mean|x − x0_real| per sample, float64, (B, ..., T).

    With a mask (B, T) the mean runs over valid frames and padded frames get 0. The mean is
    floored at NORMALISER_FLOOR, so a sample the teacher already reproduces exactly gets a
    bounded gradient instead of a division by zero.
    """
    x, x0_real, x0_fake = (a.detach().double() for a in (x, x0_real, x0_fake))
    distance = (x - x0_real).abs()
    weight = torch.ones_like(x) if mask is None else _frame_weight(mask, x)
    normaliser = (distance * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1.0)
    normaliser = normaliser.clamp_min(NORMALISER_FLOOR)
    return (x0_fake - x0_real) / _per_sample(normaliser, x) * weight


def dmd_generator_loss(
    x: Tensor, x0_real: Tensor, x0_fake: Tensor, mask: Tensor | None = None
) -> Tensor:
    """0.5·mean((x − stopgrad(x − grad))²) over valid elements of x (B, ..., T).

    Its gradient wrt x is dmd_gradient / (number of valid elements), x.numel() without a mask.
    """
    target = x.detach().double() - dmd_gradient(x, x0_real, x0_fake, mask)
    return (0.5 * _masked_mean((x.double() - target) ** 2, mask)).to(_loss_dtype(x))


def distribution_matching_loss(
    x: Tensor,
    real_velocity: VelocityFn,
    fake_velocity: VelocityFn,
    t: Tensor,
    eps: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    """DMD generator loss at student samples x (B, ..., T) noised to x_t at t (B,) with eps.

    `real_velocity` is the frozen teacher with CFG, `fake_velocity` the fake score without;
    x0 = x_t − t·v is computed in float64. Only x carries gradient; mask (B, T) or None.
    """
    with torch.no_grad():
        x_t = interpolate(x.detach(), eps, t)
        t64 = t.double()
        x0_real = x0_from_velocity(x_t.double(), t64, real_velocity(x_t, t).double())
        x0_fake = x0_from_velocity(x_t.double(), t64, fake_velocity(x_t, t).double())
    return dmd_generator_loss(x, x0_real, x0_fake, mask)


def fake_score_loss(
    fake_velocity: VelocityFn,
    x: Tensor,
    t: Tensor,
    eps: Tensor,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Flow-matching loss of the fake score on detached student samples x (B, ..., T).

    Mean over valid elements of weights·(v(x_t, t) − (ε − x))²; weights (B,) default 1,
    mask (B, T) default all valid.
    """
    x = x.detach()
    v = fake_velocity(interpolate(x, eps, t), t)
    error = (v.to(_loss_dtype(v)) - velocity_target(x, eps)).pow(2)
    if weights is not None:
        error = error * _per_sample(weights.to(error), error)
    return _masked_mean(error, mask)


def backward_simulate(
    student_velocity: VelocityFn,
    noise: Tensor,
    timesteps: Tensor,
    k: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Student input at step k: run the student k steps from noise (B, ...), no grad.

    Returns x_t (B, ...) with fresh noise at t_k, and t_k (B,). k = 0 gives the noise itself.
    """
    t_k = timesteps[k].to(device=noise.device, dtype=noise.dtype).expand(noise.shape[0])
    if k == 0:
        return noise, t_k
    with torch.no_grad():
        x0 = sample_student(student_velocity, noise, timesteps[:k], generator=generator)
        fresh = torch.randn(
            noise.shape, generator=generator, device=noise.device, dtype=noise.dtype
        )
        return interpolate(x0, fresh, t_k), t_k


def noised_real_input(
    x0_real: Tensor,
    timesteps: Tensor,
    k: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Cheaper student input at step k: real data (B, ...) noised to t_k; returns (x_t, t_k)."""
    t_k = timesteps[k].to(device=x0_real.device, dtype=x0_real.dtype).expand(x0_real.shape[0])
    eps = torch.randn(
        x0_real.shape, generator=generator, device=x0_real.device, dtype=x0_real.dtype
    )
    return interpolate(x0_real, eps, t_k), t_k


def ode_states(
    velocity: VelocityFn, noise: Tensor, timesteps: Tensor, stops: Tensor
) -> tuple[Tensor, Tensor]:
    """Euler ODE from noise (B, ...) on the union of the grid `timesteps` (N + 1,) and `stops`
    (K,), both descending from 1: the states at the stops (K, B, ...) and the endpoint (B, ...)."""
    grid = torch.unique(torch.cat([timesteps, stops.to(timesteps)])).flip(0)
    states, x, start = [], noise, 0
    for stop in stops.to(timesteps):
        end = int((grid == stop).nonzero()[0])
        x = sample_euler(velocity, x, grid[start : end + 1])
        states.append(x)
        start = end
    return torch.stack(states), sample_euler(velocity, x, grid[start:])


def regression_loss(
    student_x0: Tensor, teacher_ode_x0: Tensor, mask: Tensor | None = None
) -> Tensor:
    """MSE between the student output and the teacher's ODE endpoint (B, ..., T), mask (B, T)."""
    dtype = _loss_dtype(student_x0)
    error = (student_x0.to(dtype) - teacher_ode_x0.to(dtype)) ** 2
    return _masked_mean(error, mask)


@dataclass(frozen=True)
class TwoTimescaleSchedule:
    """Critic (fake score + discriminator) updates every iteration, the generator every n-th.

    Iterations are 0-based; the generator updates after each run of `critic_updates` critic
    updates, i.e. when (iteration + 1) % critic_updates == 0. Stateless, so resuming is exact.
    """

    critic_updates: int = 5

    def __post_init__(self) -> None:
        if self.critic_updates < 1:
            raise ValueError(f"critic_updates must be >= 1, got {self.critic_updates}")

    def updates_generator(self, iteration: int) -> bool:
        """Whether the generator takes a step at this iteration."""
        return (iteration + 1) % self.critic_updates == 0

    def counts(self, iterations: int) -> tuple[int, int]:
        """(critic updates, generator updates) over the first `iterations` iterations."""
        return iterations, iterations // self.critic_updates
