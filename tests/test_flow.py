"""Rectified-flow maths and samplers against closed forms (float64)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from audiox_turbo.flow import (
    NFECounter,
    classifier_free_guidance,
    eps_from_velocity,
    guided_velocity,
    interpolate,
    length_shift,
    sample_euler,
    sample_heun,
    sample_student,
    sample_timesteps,
    shift_timesteps,
    student_timesteps,
    teacher_timesteps,
    velocity_from_x0,
    velocity_target,
    x0_from_velocity,
)

F64 = torch.float64


def data(seed: int = 0, shape: tuple[int, ...] = (4, 3, 5)) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=F64)
    eps = torch.randn(shape, generator=g, dtype=F64)
    t = torch.rand(shape[0], generator=g, dtype=F64)
    return x0, eps, t


def test_interpolate_matches_closed_form_and_endpoints() -> None:
    x0, eps, t = data()
    expected = torch.stack([(1 - t[i]) * x0[i] + t[i] * eps[i] for i in range(len(t))])
    torch.testing.assert_close(interpolate(x0, eps, t), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(interpolate(x0, eps, torch.zeros(4, dtype=F64)), x0)
    torch.testing.assert_close(interpolate(x0, eps, torch.ones(4, dtype=F64)), eps)
    torch.testing.assert_close(interpolate(x0, eps, 0.5), (x0 + eps) / 2)


def test_velocity_is_time_derivative_of_path() -> None:
    x0, eps, t = data(1)
    h = 1e-6
    numeric = (interpolate(x0, eps, t + h) - interpolate(x0, eps, t - h)) / (2 * h)
    torch.testing.assert_close(velocity_target(x0, eps), numeric, rtol=1e-8, atol=1e-8)


def test_round_trips_x0_velocity_eps() -> None:
    x0, eps, t = data(2)
    x_t, v = interpolate(x0, eps, t), velocity_target(x0, eps)
    torch.testing.assert_close(x0_from_velocity(x_t, t, v), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(eps_from_velocity(x_t, t, v), eps, rtol=0, atol=1e-12)
    torch.testing.assert_close(velocity_from_x0(x_t, t, x0), v, rtol=0, atol=1e-10)


def test_velocity_from_x0_is_finite_at_t_zero() -> None:
    x0, eps, _ = data(3)
    t = torch.tensor([0.0, 0.5, 0.0, 1.0], dtype=F64)
    v = velocity_from_x0(interpolate(x0, eps, t), t, x0)
    assert torch.isfinite(v).all()
    assert (v[0] == 0).all() and (v[2] == 0).all()
    torch.testing.assert_close(v[[1, 3]], (eps - x0)[[1, 3]], rtol=0, atol=1e-12)


def test_shift_is_monotone_fixes_endpoints_and_inverts() -> None:
    t = torch.linspace(0, 1, 101, dtype=F64)
    for s in (0.5, 1.0, 3.0):
        shifted = shift_timesteps(t, s)
        assert shifted[0] == 0 and shifted[-1] == 1
        assert (shifted.diff() > 0).all()
        torch.testing.assert_close(shift_timesteps(shifted, 1 / s), t, rtol=0, atol=1e-12)
    assert (shift_timesteps(t[1:-1], 3.0) > t[1:-1]).all()


def test_length_shift_reference_points() -> None:
    assert length_shift(256) == pytest.approx(math.exp(0.5))
    assert length_shift(4096) == pytest.approx(math.exp(1.15))
    assert length_shift(256) == pytest.approx(1.6487, abs=1e-4)
    assert length_shift(4096) == pytest.approx(3.158, abs=1e-3)


def test_logit_normal_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    t = sample_timesteps(200_000, "logit_normal", generator=g, m=0.5, s=0.8, dtype=F64)
    logit = torch.log(t / (1 - t))
    assert t.shape == (200_000,) and (t > 0).all() and (t < 1).all()
    assert logit.mean().item() == pytest.approx(0.5, abs=0.01)
    assert logit.std().item() == pytest.approx(0.8, abs=0.01)


def test_uniform_and_mode_samplers_and_shift() -> None:
    g = torch.Generator().manual_seed(1)
    u = sample_timesteps(100_000, "uniform", generator=g, dtype=F64)
    assert u.mean().item() == pytest.approx(0.5, abs=0.01)
    mode = sample_timesteps(100_000, "mode", generator=g, dtype=F64)
    assert (mode >= 0).all() and (mode <= 1).all()
    assert mode.mean().item() == pytest.approx(0.5, abs=0.01)
    # mode_scale > 0 concentrates mass in the middle: fewer samples in the outer tenths
    assert ((mode < 0.1) | (mode > 0.9)).double().mean() < 0.15
    shifted = sample_timesteps(100_000, "uniform", shift=3.0, generator=g, dtype=F64)
    assert shifted.mean().item() > 0.6


def test_timestep_sampler_is_seeded_and_rejects_unknown_kind() -> None:
    a = sample_timesteps(16, generator=torch.Generator().manual_seed(7))
    b = sample_timesteps(16, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown timestep sampler 'cosine'"):
        sample_timesteps(4, "cosine")


def test_schedules() -> None:
    torch.testing.assert_close(student_timesteps(4), torch.tensor([1, 0.75, 0.5, 0.25], dtype=F64))
    grid = teacher_timesteps(10, shift=2.0)
    assert grid.shape == (11,) and grid[0] == 1 and grid[-1] == 0
    assert (grid.diff() < 0).all()
    with pytest.raises(ValueError):
        teacher_timesteps(0)


def test_classifier_free_guidance_form() -> None:
    c, u = torch.tensor([3.0]), torch.tensor([1.0])
    assert classifier_free_guidance(c, u, 1.0).item() == 3.0
    assert classifier_free_guidance(c, u, 0.0).item() == 1.0
    assert classifier_free_guidance(c, u, 4.0).item() == 9.0


# Gaussian data N(mu, sigma²): x_t = (1 − t)·x0 + t·ε is Gaussian with mean a·mu, var a²σ² + t²
# (a = 1 − t), and the marginal velocity is E[ε − x0 | x_t] = −mu + (t − aσ²)(x_t − a·mu)/var.
MU, SIGMA = 1.5, 0.4


def gaussian_velocity(x: Tensor, t: Tensor) -> Tensor:
    a = (1 - t)[:, None]
    tt = t[:, None]
    var = a**2 * SIGMA**2 + tt**2
    return -MU + (tt - a * SIGMA**2) * (x - a * MU) / var


def test_gaussian_velocity_field_is_exact() -> None:
    x0, eps, t = data(4, (200_000, 1))
    x0 = MU + SIGMA * x0
    x_t = interpolate(x0, eps, t)
    # E[v | x_t] by regression is the closed form: residual uncorrelated with any function of x_t
    residual = velocity_target(x0, eps) - gaussian_velocity(x_t, t)
    assert residual.mean().abs().item() < 0.01
    assert (residual * x_t).mean().abs().item() < 0.01


def affine_map_error(sampler: Callable[..., Tensor], steps: int) -> float:
    """|mean − mu| + |std − sigma| of samples pushed from standard-normal quantiles."""
    noise = torch.linspace(-3, 3, 61, dtype=F64)[:, None]
    x = sampler(gaussian_velocity, noise, teacher_timesteps(steps))
    slope = (x[-1] - x[0]).item() / 6.0
    return abs(x[30].item() - MU) + abs(slope - SIGMA)


def test_euler_converges_to_gaussian_moments() -> None:
    errors = [affine_map_error(sample_euler, n) for n in (2, 4, 8, 16, 32, 64)]
    assert all(b < a for a, b in itertools.pairwise(errors))
    assert errors[-1] < 0.02
    # first order: halving the step roughly halves the error
    assert 1.6 < errors[-2] / errors[-1] < 2.4


def test_heun_is_more_accurate_than_euler() -> None:
    for n in (8, 16, 32):
        assert affine_map_error(sample_heun, n) < 0.5 * affine_map_error(sample_euler, n)
    # second order: halving the step divides the error by about four
    assert 3.0 < affine_map_error(sample_heun, 32) / affine_map_error(sample_heun, 64) < 5.0


def test_student_sampler_on_exact_field_hits_data_mean() -> None:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(50_000, 1, generator=g, dtype=F64)
    x = sample_student(gaussian_velocity, noise, student_timesteps(4), generator=g)
    # each x0 = E[x0 | x_t] estimate: mean is exact, spread shrinks towards the posterior mean
    assert x.mean().item() == pytest.approx(MU, abs=0.01)
    assert x.std().item() < SIGMA


class CountingModel:
    """A fake network: counts forwards and the samples it sees, returns a fixed velocity."""

    def __init__(self) -> None:
        self.forwards = 0
        self.samples = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        assert t.shape == (x.shape[0],)
        self.forwards += 1
        self.samples += x.shape[0]
        return -x


def test_student_uses_exactly_four_nfe() -> None:
    model = CountingModel()
    counter = NFECounter(model)
    sample_student(counter, torch.randn(3, 2, 5), student_timesteps(4))
    assert counter.nfe == 4 and counter.forwards == 4
    assert model.forwards == 4 and model.samples == 12


@pytest.mark.parametrize("steps", [1, 5, 10])
def test_cfg_teacher_uses_2n_nfe_in_n_batched_forwards(steps: int) -> None:
    model = CountingModel()
    pair = NFECounter(model, nfe_per_forward=2)
    batch = 3
    sample_euler(guided_velocity(pair, 4.0), torch.randn(batch, 2, 5), teacher_timesteps(steps))
    assert pair.forwards == steps and pair.nfe == 2 * steps
    assert model.forwards == steps and model.samples == 2 * batch * steps


def test_heun_nfe_is_2n_minus_1() -> None:
    counter = NFECounter(CountingModel())
    sample_heun(counter, torch.randn(2, 4), teacher_timesteps(6))
    assert counter.nfe == 2 * 6 - 1
    counter.reset()
    assert counter.nfe == 0


def test_guided_velocity_splits_cond_and_uncond() -> None:
    def pair(x2: Tensor, t2: Tensor) -> Tensor:
        b = x2.shape[0] // 2
        assert torch.equal(x2[:b], x2[b:]) and torch.equal(t2[:b], t2[b:])
        return torch.cat([torch.full_like(x2[:b], 3.0), torch.full_like(x2[:b], 1.0)])

    v = guided_velocity(pair, 2.5)(torch.randn(2, 3), torch.rand(2))
    torch.testing.assert_close(v, torch.full((2, 3), 6.0))


def test_callbacks_report_progress() -> None:
    for sampler, steps, total in (
        (sample_euler, teacher_timesteps(5), 5),
        (sample_heun, teacher_timesteps(5), 5),
        (sample_student, student_timesteps(4), 4),
    ):
        seen: list[tuple[int, int]] = []
        sampler(
            lambda x, t: -x,
            torch.randn(2, 3),
            steps,
            callback=lambda i, n, s=seen: s.append((i, n)),
        )
        assert seen == [(i, total) for i in range(1, total + 1)]


def test_student_sampler_is_deterministic_with_seed_and_keeps_dtype() -> None:
    noise = torch.randn(2, 4, 8)
    runs = [
        sample_student(
            lambda x, t: x * t[:, None, None],
            noise,
            student_timesteps(4),
            generator=torch.Generator().manual_seed(3),
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1]) and runs[0].dtype == torch.float32
    other = sample_student(
        lambda x, t: x * t[:, None, None],
        noise,
        student_timesteps(4),
        generator=torch.Generator().manual_seed(4),
    )
    assert not torch.equal(runs[0], other)
