"""DMD loss algebra, backward simulation, update schedule and the discriminator head."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from audiox_turbo.distill.discriminator import (
    DiscriminatorHead,
    discriminator_logits,
    gan_discriminator_loss,
    gan_generator_loss,
    sample_gan_timesteps,
)
from audiox_turbo.distill.dmd import (
    NORMALISER_FLOOR,
    TwoTimescaleSchedule,
    backward_simulate,
    distribution_matching_loss,
    dmd_generator_loss,
    dmd_gradient,
    fake_score_loss,
    noised_real_input,
    ode_states,
    regression_loss,
    sample_dmd_timesteps,
)
from audiox_turbo.flow import guided_velocity, interpolate, sample_student, student_timesteps

F64 = torch.float64


def affine_velocity(seed: int, dim: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(dim, dim, generator=g, dtype=F64) / dim**0.5, torch.randn(
        dim, generator=g, dtype=F64
    )


def velocity_fn(seed: int, dim: int = 6) -> Callable[[Tensor, Tensor], Tensor]:
    """A float64 velocity field v(x, t) = (x W + b)·(1 + t) on (B, dim) tensors."""
    w, b = affine_velocity(seed, dim)
    return lambda x, t: (x @ w + b) * (1 + t[:, None])


def test_autograd_of_velocity_form_loss_equals_x0_and_score_form_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, generator=g, dtype=F64, requires_grad=True)
    eps = torch.randn(5, 6, generator=g, dtype=F64)
    t = torch.rand(5, generator=g, dtype=F64) * 0.9 + 0.05
    real, fake = velocity_fn(1), velocity_fn(2)
    distribution_matching_loss(x, real, fake, t, eps).backward()

    x_t = (1 - t[:, None]) * x.detach() + t[:, None] * eps
    v_real, v_fake = real(x_t, t), fake(x_t, t)
    x0_real, x0_fake = x_t - t[:, None] * v_real, x_t - t[:, None] * v_fake
    norm = (x.detach() - x0_real).abs().mean(1, keepdim=True)
    expected = (x0_fake - x0_real) / norm
    torch.testing.assert_close(x.grad * x.numel(), expected, rtol=1e-12, atol=1e-12)
    # velocity form: x0_fake − x0_real = t·(v_real − v_fake)
    torch.testing.assert_close(expected, t[:, None] * (v_real - v_fake) / norm)
    # score (ε) form of DMD: x0 = (x_t − t·ε)/(1 − t), ε = x_t + (1 − t)·v
    e_real, e_fake = x_t + (1 - t[:, None]) * v_real, x_t + (1 - t[:, None]) * v_fake
    score_form = -t[:, None] / (1 - t[:, None]) * (e_fake - e_real) / norm
    torch.testing.assert_close(score_form, expected)


def test_generator_loss_value_and_float32_reporting() -> None:
    x = torch.randn(3, 2, 4)
    x0_real, x0_fake = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    grad = dmd_gradient(x, x0_real, x0_fake)
    assert grad.dtype == F64 and grad.shape == x.shape
    loss = dmd_generator_loss(x, x0_real, x0_fake)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.5 * grad.pow(2).mean().item(), rel=1e-6)


def test_dmd_gradient_is_finite_when_normaliser_vanishes() -> None:
    x = torch.randn(2, 3)
    grad = dmd_gradient(x, x, x + 1)
    assert torch.isfinite(grad).all()


def test_only_student_sample_gets_gradient_from_dmd_loss() -> None:
    fake = torch.nn.Linear(4, 4)
    x = torch.randn(3, 4, requires_grad=True)
    loss = distribution_matching_loss(
        x, lambda x_t, t: -x_t, lambda x_t, t: fake(x_t), torch.full((3,), 0.5), torch.randn(3, 4)
    )
    loss.backward()
    assert x.grad is not None and fake.weight.grad is None


def test_fake_score_loss_is_flow_matching_on_detached_samples() -> None:
    net = torch.nn.Linear(4, 4).double()
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    eps, t = torch.randn(3, 4, dtype=F64), torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    fn = lambda x_t, t_: net(x_t)  # noqa: E731
    loss = fake_score_loss(fn, x, t, eps)
    x_t = interpolate(x.detach(), eps, t)
    per_sample = (net(x_t) - (eps - x.detach())).pow(2).mean(1)
    torch.testing.assert_close(loss, per_sample.mean())
    weights = torch.tensor([1.0, 0.0, 2.0], dtype=F64)
    torch.testing.assert_close(
        fake_score_loss(fn, x, t, eps, weights), (per_sample * weights).mean()
    )
    loss.backward()
    assert x.grad is None and net.weight.grad is not None


def test_backward_simulation_runs_the_student_chain() -> None:
    steps = student_timesteps(4)
    student = velocity_fn(3)
    noise = torch.randn(4, 6, dtype=F64)
    x, t = backward_simulate(student, noise, steps, 0, torch.Generator().manual_seed(0))
    assert x is noise and torch.equal(t, torch.ones(4, dtype=F64))
    for k in (1, 3):
        x, t = backward_simulate(student, noise, steps, k, torch.Generator().manual_seed(5))
        g = torch.Generator().manual_seed(5)
        x0 = sample_student(student, noise, steps[:k], generator=g)
        expected = interpolate(x0, torch.randn(4, 6, generator=g, dtype=F64), steps[k])
        torch.testing.assert_close(x, expected, rtol=0, atol=0)
        assert t.shape == (4,) and (t == steps[k]).all()


def test_backward_simulation_builds_no_graph() -> None:
    net = torch.nn.Linear(3, 3)
    x, _ = backward_simulate(lambda x, t: net(x), torch.randn(2, 3), student_timesteps(4), 2)
    assert not x.requires_grad


def test_noised_real_input_is_on_the_path() -> None:
    x0 = torch.randn(3, 2, 5, dtype=F64)
    x_t, t = noised_real_input(x0, student_timesteps(4), 2, torch.Generator().manual_seed(1))
    eps = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close(x_t, 0.5 * x0 + 0.5 * eps)
    assert (t == 0.5).all()


def test_dmd_normaliser_is_floored_not_divided_by_zero() -> None:
    x = torch.ones(2, 3, 4, dtype=F64)
    x0_fake = x + torch.tensor([0.0, 1e-3], dtype=F64)[:, None, None]
    grad = dmd_gradient(x, x.clone(), x0_fake)  # the teacher reproduces x exactly
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, (x0_fake - x) / NORMALISER_FLOOR)
    far = x - 2.0  # an ordinary sample: mean|x − x0_real| = 2, the floor does not apply
    torch.testing.assert_close(dmd_gradient(x, far, far + 1.0), torch.full_like(x, 0.5))


def test_regression_loss_is_mse() -> None:
    a, b = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    assert regression_loss(a, b).item() == 4.0


def test_ode_states_stop_at_the_student_times_on_the_teacher_grid() -> None:
    """Euler on the union of the two grids, written out in float64: states at the stops and
    the endpoint; a constant field (Euler exact) puts the states on the straight line."""
    g = torch.Generator().manual_seed(6)
    noise = torch.randn(3, 6, generator=g, dtype=F64)
    grid = torch.linspace(1, 0, 6, dtype=F64)  # 1, .8, .6, .4, .2, 0
    stops = torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=F64)
    v = velocity_fn(7)
    states, end = ode_states(v, noise, grid, stops)
    union = [1.0, 0.8, 0.75, 0.6, 0.5, 0.4, 0.25, 0.2, 0.0]
    x, expected = noise, {1.0: noise}
    for t, t_next in itertools.pairwise(union):
        x = x + (t_next - t) * v(x, torch.full((3,), t, dtype=F64))
        expected[t_next] = x
    assert states.shape == (4, 3, 6)
    for state, stop in zip(states, stops.tolist(), strict=True):
        torch.testing.assert_close(state, expected[stop], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(end, expected[0.0], rtol=1e-12, atol=1e-12)

    c = torch.randn(6, generator=g, dtype=F64)
    states, end = ode_states(lambda x, t: c.expand_as(x), noise, grid, stops)
    for state, stop in zip(states, stops.tolist(), strict=True):
        torch.testing.assert_close(state, noise + (stop - 1) * c, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(end, noise - c, rtol=1e-12, atol=1e-12)


def frame_mask_of(lengths: list[int], frames: int) -> Tensor:
    """(B, T) bool: the first lengths[b] frames of sample b are valid."""
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


def test_masked_dmd_gradient_ignores_padded_frames_closed_form() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 2, 5, generator=g, dtype=F64, requires_grad=True)
    eps = torch.randn(3, 2, 5, generator=g, dtype=F64)
    t = torch.tensor([0.2, 0.5, 0.8], dtype=F64)
    mask = frame_mask_of([5, 3, 1], 5)
    real = lambda x_t, t_: 0.5 * x_t * (1 + t_[:, None, None])  # noqa: E731
    fake = lambda x_t, t_: -x_t + t_[:, None, None]  # noqa: E731
    loss = distribution_matching_loss(x, real, fake, t, eps, mask)
    loss.backward()

    x_t = (1 - t[:, None, None]) * x.detach() + t[:, None, None] * eps
    x0_real = x_t - t[:, None, None] * real(x_t, t)
    x0_fake = x_t - t[:, None, None] * fake(x_t, t)
    w = mask[:, None, :].expand_as(x).double()
    norm = ((x.detach() - x0_real).abs() * w).sum((1, 2)) / w.sum((1, 2))
    expected = (x0_fake - x0_real) / norm[:, None, None] * w
    torch.testing.assert_close(x.grad * w.sum(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dmd_gradient(x, x0_real, x0_fake, mask), expected)
    assert loss.item() == pytest.approx(0.5 * (expected.pow(2).sum() / w.sum()).item())
    # whatever sits in padded frames changes neither loss nor gradient
    junk = torch.where(mask[:, None, :], x0_fake, 1e3 * torch.randn_like(x0_fake))
    torch.testing.assert_close(dmd_gradient(x, x0_real, junk, mask), expected)


def test_masked_losses_with_full_mask_equal_unmasked() -> None:
    g = torch.Generator().manual_seed(5)
    x, a, b = (torch.randn(2, 3, 4, generator=g) for _ in range(3))
    full = torch.ones(2, 4, dtype=torch.bool)
    torch.testing.assert_close(dmd_generator_loss(x, a, b, full), dmd_generator_loss(x, a, b))
    torch.testing.assert_close(regression_loss(a, b, full), regression_loss(a, b))
    fn = lambda x_t, t_: 2 * x_t  # noqa: E731
    t = torch.tensor([0.3, 0.7])
    torch.testing.assert_close(
        fake_score_loss(fn, x, t, a, mask=full), fake_score_loss(fn, x, t, a)
    )


def test_masked_fake_score_and_regression_losses_closed_form() -> None:
    g = torch.Generator().manual_seed(6)
    x, eps = (
        torch.randn(2, 3, 4, generator=g, dtype=F64),
        torch.randn(2, 3, 4, generator=g, dtype=F64),
    )
    t = torch.tensor([0.25, 0.75], dtype=F64)
    mask = frame_mask_of([4, 2], 4)
    w = mask[:, None, :].expand_as(x).double()
    fn = lambda x_t, t_: x_t * t_[:, None, None]  # noqa: E731
    error = (fn(interpolate(x, eps, t), t) - (eps - x)) ** 2
    weights = torch.tensor([1.0, 3.0], dtype=F64)
    expected = (error * weights[:, None, None] * w).sum() / w.sum()
    torch.testing.assert_close(fake_score_loss(fn, x, t, eps, weights, mask), expected)
    padded = torch.where(mask[:, None, :], eps, torch.full_like(eps, 50.0))
    regression = regression_loss(padded, eps, mask)
    assert regression.item() == 0.0
    torch.testing.assert_close(regression_loss(x, eps, mask), ((x - eps) ** 2 * w).sum() / w.sum())


@pytest.mark.parametrize(
    ("n", "iterations", "generator_updates"), [(5, 100, 20), (5, 7, 1), (1, 9, 9), (3, 2, 0)]
)
def test_two_timescale_schedule_exact_counts(
    n: int, iterations: int, generator_updates: int
) -> None:
    schedule = TwoTimescaleSchedule(n)
    flags = [schedule.updates_generator(i) for i in range(iterations)]
    assert sum(flags) == generator_updates
    assert schedule.counts(iterations) == (iterations, generator_updates)
    assert [i for i, f in enumerate(flags) if f] == list(range(n - 1, iterations, n))


def test_two_timescale_schedule_rejects_zero() -> None:
    with pytest.raises(ValueError, match="critic_updates"):
        TwoTimescaleSchedule(0)


def test_guided_real_score_is_one_batched_forward_with_cond_and_null() -> None:
    calls: list[Tensor] = []

    def net(x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        calls.append(cond)
        return x_t * cond[:, None]

    cond_pair = torch.tensor([2.0, 2.0, 0.0, 0.0])
    v = guided_velocity(lambda x2, t2: net(x2, t2, cond_pair), 3.0)(torch.ones(2, 3), torch.rand(2))
    assert len(calls) == 1
    torch.testing.assert_close(v, torch.full((2, 3), 6.0))


def test_dmd_timesteps_range_and_shift() -> None:
    g = torch.Generator().manual_seed(0)
    t = sample_dmd_timesteps(10_000, 0.02, 0.98, generator=g)
    assert t.min() >= 0.02 and t.max() <= 0.98
    assert t.mean().item() == pytest.approx(0.5, abs=0.02)
    assert sample_dmd_timesteps(10_000, 0.02, 0.98, shift=3.0, generator=g).mean() > 0.6
    s = sample_gan_timesteps(1000, 0.2, g)
    assert s.min() >= 0 and s.max() < 0.2


def test_discriminator_head_shapes_layers_and_mask() -> None:
    torch.manual_seed(0)
    head = DiscriminatorHead(8, layers=(0, -1), hidden=16)
    features = [torch.randn(3, 5, 8) for _ in range(4)]
    logits = head(features)
    assert logits.shape == (3,)
    features_other_middle = [features[0], torch.randn(3, 5, 8), torch.randn(3, 5, 8), features[3]]
    torch.testing.assert_close(head(features_other_middle), logits)
    # padded tokens (mask False) do not change the logit
    mask = torch.tensor([[True] * 3 + [False] * 2] * 3)
    padded = [torch.cat([f[:, :3], torch.randn(3, 2, 8)], 1) for f in features]
    padded_again = [torch.cat([f[:, :3], 100 * torch.randn(3, 2, 8)], 1) for f in features]
    torch.testing.assert_close(head(padded, mask), head(padded_again, mask))
    torch.testing.assert_close(head(padded, mask), head([f[:, :3] for f in features]))
    with pytest.raises(ValueError, match="out of range"):
        DiscriminatorHead(8, layers=(7,))(features)


def test_discriminator_logits_pass_gradient_to_samples() -> None:
    net = torch.nn.Linear(4, 4)
    head = DiscriminatorHead(4, hidden=8)

    def features_fn(x_t: Tensor, t: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = net(x_t)
        return h, [h.unsqueeze(1)]

    x0 = torch.randn(3, 4, requires_grad=True)
    logits = discriminator_logits(features_fn, head, x0, torch.full((3,), 0.1), torch.randn(3, 4))
    gan_generator_loss(logits, "nonsaturating").backward()
    assert logits.shape == (3,) and x0.grad is not None and x0.grad.abs().sum() > 0


def test_discriminator_kernel_one_is_a_per_token_map() -> None:
    torch.manual_seed(0)
    head = DiscriminatorHead(6, hidden=8, kernel_size=1)
    features = [torch.randn(2, 5, 6)]
    shuffled = [features[0][:, torch.randperm(5)]]
    torch.testing.assert_close(head(shuffled), head(features))
    single = [torch.randn(4, 1, 6)]
    wide = DiscriminatorHead(6, hidden=8, kernel_size=3)
    with torch.no_grad():
        for narrow_branch, wide_branch in zip(head.branches, wide.branches, strict=True):
            wide_branch.load_state_dict(
                narrow_branch.state_dict()
                | {
                    name: F.pad(narrow_branch.get_parameter(name), (1, 1))
                    for name in ("conv1.weight", "conv2.weight")
                }
            )
    torch.testing.assert_close(wide(single), head(single))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        DiscriminatorHead(6, kernel_size=2)


def test_gan_losses_closed_forms() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert gan_generator_loss(fake, "hinge").item() == pytest.approx(0.75)
    assert gan_discriminator_loss(real, fake, "hinge").item() == pytest.approx(
        (0 + 0.5) / 2 + (0 + 1.5) / 2
    )
    assert gan_generator_loss(fake, "nonsaturating").item() == pytest.approx(
        F.softplus(-fake).mean().item()
    )
    assert gan_discriminator_loss(real, fake, "nonsaturating").item() == pytest.approx(
        (F.softplus(-real).mean() + F.softplus(fake).mean()).item()
    )
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'"):
        gan_generator_loss(fake, "wgan")
