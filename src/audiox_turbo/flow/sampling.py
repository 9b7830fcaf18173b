"""Samplers: teacher ODE solvers (Euler, Heun) with batched CFG, and the few-step student sampler.

A velocity function maps (x_t (B, ...), t (B,)) to v (B, ...). Timestep schedules are float64
grids; samplers cast each t to the dtype and device of the state. Samplers do not switch
autograd off: wrap them in `torch.no_grad()` / `torch.inference_mode()` for generation.
`guided_velocity` is the one CFG of the project and `sample` the one dispatch over methods:
the native models (`model/generation.py`) and the official network (`official/sampling.py`)
both build on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from audiox_turbo.flow.path import shift_timesteps, x0_from_velocity

VelocityFn = Callable[[Tensor, Tensor], Tensor]
ProgressCallback = Callable[[int, int], None]
NoiseFn = Callable[[Tensor], Tensor]
"""Fresh standard normal noise shaped like its argument x (B, ...), on x's device and dtype."""
NoiseSource = torch.Generator | NoiseFn | None
SAMPLING_METHODS = ("euler", "heun", "student")


def teacher_timesteps(steps: int, shift: float = 1.0) -> Tensor:
    """(steps + 1,) float64 grid from 1 to 0, uniform then shifted."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return shift_timesteps(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift)


def student_timesteps(steps: int = 4, shift: float = 1.0) -> Tensor:
    """(steps,) float64 student times: [1, .75, .5, .25] for 4 steps, then shifted."""
    return teacher_timesteps(steps, shift)[:-1]


def classifier_free_guidance(v_cond: Tensor, v_uncond: Tensor, scale: float) -> Tensor:
    """v = v_uncond + w·(v_cond − v_uncond); w = 1 is the conditional velocity."""
    return v_uncond + scale * (v_cond - v_uncond)


def rescale_guidance(guided: Tensor, v_cond: Tensor, scale_phi: float) -> Tensor:
    """CFG rescale over channels (B, C, ...): φ·g·std_C(v_cond)/std_C(g) + (1 − φ)·g (unbiased)."""
    ratio = v_cond.std(dim=1, keepdim=True) / guided.std(dim=1, keepdim=True)
    return scale_phi * guided * ratio + (1 - scale_phi) * guided


def guided_velocity(
    forward_pair: Callable[[Tensor, Tensor], Tensor], scale: float, rescale_phi: float = 0.0
) -> VelocityFn:
    """CFG velocity from one batched forward (2 NFE per call), optionally rescaled (φ > 0).

    `forward_pair(x2, t2)` gets x2 = cat[x, x] (2B, ...) and t2 (2B,) and returns cat[v_cond,
    v_uncond]; the caller binds the batched condition cat[cond, null].
    """

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        v_cond, v_uncond = forward_pair(torch.cat([x, x]), torch.cat([t, t])).chunk(2)
        guided = classifier_free_guidance(v_cond, v_uncond, scale)
        return guided if rescale_phi == 0.0 else rescale_guidance(guided, v_cond, rescale_phi)

    return velocity


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample: method (euler | heun | student), steps, CFG scale, timestep shift."""

    method: str = "euler"
    steps: int = 25
    cfg: float = 1.0
    shift: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in SAMPLING_METHODS:
            raise ValueError(
                f"unknown sampling method {self.method!r}; use {', '.join(SAMPLING_METHODS)}"
            )
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be in 1..1000, got {self.steps}")
        if not math.isfinite(self.cfg) or self.cfg < 0:
            raise ValueError(f"cfg must be a finite number ≥ 0, got {self.cfg}")
        if self.method == "student" and self.cfg != 1.0:
            raise ValueError("the few-step student sampler runs without CFG: use cfg=1")
        if not math.isfinite(self.shift) or self.shift <= 0:
            raise ValueError(f"shift must be a finite number > 0, got {self.shift}")

    @property
    def guided(self) -> bool:
        """True when the velocity needs the unconditional branch (cfg ≠ 1)."""
        return self.cfg != 1.0

    def timesteps(self) -> Tensor:
        """The float64 grid `sample` walks: (steps + 1,) for ODE methods, (steps,) for student."""
        if self.method == "student":
            return student_timesteps(self.steps, self.shift)
        return teacher_timesteps(self.steps, self.shift)


class NFECounter:
    """Wraps a velocity function or a batched CFG `forward_pair`, counting calls.

    `forwards` counts network calls; `nfe` counts sample-equivalent evaluations, i.e.
    `nfe_per_forward` per call (2 for a forward_pair that evaluates cond and uncond at once).
    """

    def __init__(self, fn: Callable[..., Tensor], nfe_per_forward: int = 1) -> None:
        self.fn = fn
        self.nfe_per_forward = nfe_per_forward
        self.forwards = 0

    @property
    def nfe(self) -> int:
        return self.forwards * self.nfe_per_forward

    def reset(self) -> None:
        self.forwards = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        self.forwards += 1
        return self.fn(*args, **kwargs)


def _time(t: Tensor, x: Tensor) -> Tensor:
    """Scalar schedule entry as a (B,) tensor on x's device and dtype."""
    return t.to(device=x.device, dtype=x.dtype).expand(x.shape[0])


def sample_euler(
    velocity: VelocityFn,
    noise: Tensor,
    timesteps: Tensor,
    callback: ProgressCallback | None = None,
) -> Tensor:
    """Euler ODE from noise (B, ...) along `timesteps` (N + 1,) to x at timesteps[-1]; N NFE."""
    x = noise
    total = len(timesteps) - 1
    for i in range(total):
        t, t_next = timesteps[i], timesteps[i + 1]
        x = x + (t_next - t).to(x.dtype) * velocity(x, _time(t, x))
        if callback is not None:
            callback(i + 1, total)
    return x


def sample_heun(
    velocity: VelocityFn,
    noise: Tensor,
    timesteps: Tensor,
    callback: ProgressCallback | None = None,
) -> Tensor:
    """Heun (explicit trapezoid) ODE from noise (B, ...); 2N − 1 NFE when timesteps end at 0.

    A step whose t_next is 0 is a plain Euler step (the corrector would evaluate v at t = 0).
    """
    x = noise
    total = len(timesteps) - 1
    for i in range(total):
        t, t_next = timesteps[i], timesteps[i + 1]
        dt = (t_next - t).to(x.dtype)
        v = velocity(x, _time(t, x))
        x_euler = x + dt * v
        x = x_euler if t_next == 0 else x + dt * 0.5 * (v + velocity(x_euler, _time(t_next, x)))
        if callback is not None:
            callback(i + 1, total)
    return x


def fresh_noise_like(x: Tensor, source: NoiseSource) -> Tensor:
    """Noise shaped like x (B, ...) from a generator (None: the global one) or a `NoiseFn`."""
    if callable(source):
        return source(x)
    return torch.randn(x.shape, generator=source, device=x.device, dtype=x.dtype)


def sample_student(
    velocity: VelocityFn,
    noise: Tensor,
    timesteps: Tensor,
    generator: NoiseSource = None,
    callback: ProgressCallback | None = None,
) -> Tensor:
    """Few-step DMD sampler from noise (B, ...): len(timesteps) NFE, returns the last x0.

    At each t: x0 = x_t − t·v(x_t, t); then x_{t_next} = (1 − t_next)·x0 + t_next·ε_fresh.
    """
    total = len(timesteps)
    if total < 1:
        raise ValueError("student sampling needs at least one timestep")
    x = x0 = noise
    for i in range(total):
        t = _time(timesteps[i], x)
        x0 = x0_from_velocity(x, t, velocity(x, t))
        if i + 1 < total:
            t_next = timesteps[i + 1].to(x.dtype)
            x = (1 - t_next) * x0 + t_next * fresh_noise_like(x, generator)
        if callback is not None:
            callback(i + 1, total)
    return x0


def sample(
    velocity: VelocityFn,
    noise: Tensor,
    settings: SamplerSettings,
    generator: NoiseSource = None,
    callback: ProgressCallback | None = None,
) -> Tensor:
    """x0 (B, ...) from noise (B, ...) with `settings`; `generator` (a torch generator or a
    `NoiseFn`) feeds the student's re-noising.

    `velocity` is used as given: bind CFG into it (`guided_velocity`) when settings.guided.
    """
    grid = settings.timesteps()
    if settings.method == "student":
        return sample_student(velocity, noise, grid, generator, callback)
    run = sample_euler if settings.method == "euler" else sample_heun
    return run(velocity, noise, grid, callback)
