"""Proof that the DMD code distils: a 4-step student of a flow teacher on a 2-D Gaussian mixture.

The toy (teacher, distillation loop, closed-form energy distance) lives in `toy_distill.py`.
Scores are unbiased energy distances to the true mixture with its side exact, so a perfect
model scores 0 ± the noise of its own n = 4000 samples (measured ±0.0008).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from audiox_turbo.distill import TwoTimescaleSchedule
from toy_distill import (
    DistillSettings,
    ToyVelocityNet,
    distil,
    energy_distance_to_mixture,
    generate,
    mean_distance_to_mixture,
    mixture_self_distance,
    mode_fractions,
    rice_mean,
    sample_mixture,
    train_teacher,
)

SEED = 2
TEACHER_STEPS = 1500
EVAL_SAMPLES = 4000
GAN_SETTINGS = DistillSettings(gan_weight=0.003, gan_critic_weight=0.01)
# Two independent n = 4000 sample sets of one student differ by up to 0.006 (5 seeds), so a
# GAN-on student counts as "not worse" when within that evaluation noise of the plain one.
EVAL_NOISE = 0.006


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Tiny MLPs gain nothing from threads; one thread keeps the run fast and reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def teacher(single_thread: None) -> ToyVelocityNet:
    return train_teacher(SEED, steps=TEACHER_STEPS)


def score(samples: list[torch.Tensor]) -> float:
    """Mean exact-mixture energy distance over independent sample sets."""
    return sum(energy_distance_to_mixture(x) for x in samples) / len(samples)


def teacher_scores(teacher: ToyVelocityNet) -> dict[str, float]:
    """Energy distances of the teacher's Euler samples (CFG off) at 100 and 4 NFE."""
    return {
        steps: score([generate(teacher, "euler", int(steps), EVAL_SAMPLES, s) for s in (1, 2)])
        for steps in ("100", "4")
    }


def distil_and_score(
    teacher: ToyVelocityNet, settings: DistillSettings, seed: int
) -> tuple[float, torch.Tensor]:
    """Distil (checking the teacher is untouched and the update counts), then score at 4 NFE."""
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student, counts = distil(teacher, settings, seed)
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "teacher weights changed"
    critic, generator = TwoTimescaleSchedule(settings.critic_updates).counts(settings.iterations)
    assert counts == {"critic": critic, "generator": generator}
    samples = [generate(student, "student", 4, EVAL_SAMPLES, s) for s in (1, 2)]
    return score(samples), mode_fractions(torch.cat(samples))


def test_rice_mean_limits() -> None:
    sigma = 0.3
    assert float(rice_mean(torch.zeros(1), sigma)) == pytest.approx(sigma * math.sqrt(math.pi / 2))
    far = torch.tensor([50.0], dtype=torch.float64)
    assert float(rice_mean(far, sigma)) == pytest.approx(50 + sigma**2 / 100, abs=1e-6)


def test_closed_form_mixture_terms_match_monte_carlo(single_thread: None) -> None:
    g = torch.Generator().manual_seed(0)
    y, _ = sample_mixture(400_000, g)
    y2, _ = sample_mixture(400_000, g)
    x = torch.tensor([[0.0, 0.0], [4.0, 0.1], [2.0, -3.0]], dtype=torch.float64)
    monte_carlo = torch.cdist(x, y.double()).mean(1)
    torch.testing.assert_close(mean_distance_to_mixture(x), monte_carlo, rtol=0, atol=0.02)
    pairs = (y.double() - y2.double()).norm(dim=1).mean()
    assert mixture_self_distance() == pytest.approx(float(pairs), abs=0.02)


def test_energy_distance_of_true_samples_is_near_zero() -> None:
    scores = [
        energy_distance_to_mixture(sample_mixture(2000, torch.Generator().manual_seed(s))[0])
        for s in range(4)
    ]
    assert abs(sum(scores) / 4) < 0.002, scores
    shifted = sample_mixture(2000, torch.Generator().manual_seed(0))[0] + 0.5
    assert energy_distance_to_mixture(shifted) > 0.1


def test_four_step_student_matches_teacher(teacher: ToyVelocityNet) -> None:
    scores = teacher_scores(teacher)
    student, fractions = distil_and_score(teacher, DistillSettings(), SEED)
    assert student <= 0.5 * scores["4"], (student, scores)
    # Not the 1.5x: the toy teacher is exact within the estimator's noise (its
    # distance is 0 ± 0.0008), so a ratio to it is undefined; the student's excess over it is
    # bounded instead (measured 0.0006 to 0.0050 over seeds 0-4, SEED = 2 scored 0.0021).
    assert student - scores["100"] <= 0.01, (student, scores)
    assert fractions.min() >= 0.05, fractions


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_student_over_seeds_and_gan_term_does_not_make_it_worse(seed: int) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        teacher = train_teacher(seed, steps=TEACHER_STEPS)
        scores = teacher_scores(teacher)
        plain, fractions = distil_and_score(teacher, DistillSettings(), seed)
        with_gan, gan_fractions = distil_and_score(teacher, GAN_SETTINGS, seed)
    finally:
        torch.set_num_threads(threads)
    assert plain <= 0.5 * scores["4"], (plain, scores)
    assert plain - scores["100"] <= 0.01, (plain, scores)
    assert min(fractions.min(), gan_fractions.min()) >= 0.05, (fractions, gan_fractions)
    assert with_gan <= plain + EVAL_NOISE, (with_gan, plain)
