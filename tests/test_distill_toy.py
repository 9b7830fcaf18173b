"""Proof that the product's distillation distils: a 4-step student of a flow teacher on a 2-D
Gaussian mixture, made by `DistillTask` run by the `Trainer` (toy networks behind the product's
interfaces, `toy_distill.py`), read back from its exported model folder and sampled as
`generate` samples it.

Scores are unbiased energy distances to the true mixture with its side exact, so a perfect
model scores 0 ± the noise of its own samples: |score| ≤ NOISE_FLOOR at n = EVAL_SAMPLES.
Criteria (CFG off): student at 4 NFE ≤ 1.5x the teacher at 100 NFE and ≤ 0.5x the teacher at
4 NFE, and per-class mode coverage: each class's samples land on its own two modes and each of
those modes holds a fair share of them. A ratio to the teacher only means something when the
teacher's own distance is well above the noise floor; a fully trained toy teacher is exact
within that noise, so the teacher here is deliberately under-trained (TEACHER_STEPS).
Measured on SEED (1500 distillation steps, 300 generator updates, constant lr as in the
product's configs): teacher 0.0245 at 100 NFE and 0.0830 at 4 NFE; student 0.0121 at 4 NFE
(0.50x and 0.15x); weakest per-class mode share 0.456, weakest on-class share 0.971. A cosine
lr (the toy's first setting) gave 0.0268 on seed 1 and failed seed 3 (0.052 against 0.035 with
a constant lr). Seed 3 passes (1.42x, 0.46x; with the GAN term at 0.003 / 0.01: 1.05x, 0.34x).
Seed 2 does not: its teacher (0.052) already splits one class 0.54 / 0.37 and DMD's reverse KL
widens that (student 0.112, weakest mode 0.30); the GAN term, which sees real data, narrows the
gap (0.086) but does not close it, so CI asserts SEED only.

Defects these tests catch (each made on purpose in the code, the failing test recorded):
- DMD gradient sign flipped (teacher and fake score swapped in `critic_judged_terms`, or
  `dmd_gradient` returning x0_real − x0_fake): the student scores 1.85 / 1.98 with whole modes
  empty -> `test_four_step_student_beats_the_teachers_four_steps`,
  `test_four_step_student_covers_both_modes_of_every_class` fail (the swap also fails
  `test_the_real_score_is_the_teacher_guided_against_its_null` and test_distill_wiring's
  `test_dmd_reads_the_teacher_as_real_and_the_fake_score_as_fake`).
- the real score's CFG halves swapped (`conditioned_velocity` pairing [null, cond]):
  `test_the_real_score_is_the_teacher_guided_against_its_null` fails.
- the critic/generator ratio not honoured (`phases` always ["generator", "critic"]):
  `test_the_trainer_updates_critic_and_generator_at_the_configured_ratio` fails (1500
  generator updates instead of 300) and so does the quality test (student 0.074), as does
  test_distill_wiring's `test_phases_alternate_at_the_configured_ratio[3]`.
- the student's timesteps wrong (trained only at its first step, k = 0): the student scores
  0.46 -> `test_the_student_trains_on_exactly_its_own_timesteps` and both quality tests fail
  (a configured grid ignored fails test_distill_wiring's
  `test_the_student_runs_only_on_its_own_timesteps`).
- the generator's GAN term detached from the student (`x_fake.detach()` into the
  discriminator in `critic_judged_terms`): test_distill_wiring's
  `test_gan_term_reaches_the_student_and_the_critic_weights_take_no_gradient` fails (the toy
  runs without the GAN).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import audiox_turbo.train.student as student_module
from audiox_turbo.flow.sampling import SamplerSettings
from audiox_turbo.train.run_config import DistillConfig
from toy_distill import (
    CLASSES,
    DURATION,
    MixtureClips,
    ToyModel,
    class_mode_shares,
    collate_clips,
    distill_trainer,
    energy_distance_to_mixture,
    exported_student,
    generate,
    mean_distance_to_mixture,
    mean_pairwise_distance,
    mixture_self_distance,
    rice_mean,
    sample_mixture,
    train_teacher,
)

SEED = 1
TEACHER_STEPS = 450
DISTILL_STEPS = 1500
EVAL_SAMPLES = 8000
EVAL_SEEDS = (1, 2)
# Largest |score| of true-mixture samples at n = EVAL_SAMPLES over seeds 0-7 was 0.0012.
NOISE_FLOOR = 0.0015
SETTINGS = DistillConfig(
    teacher_cfg=1.0,
    critic_updates=5,
    generator_lr=3e-4,
    critic_lr=1e-3,
    gan_weight=0.0,
    gan_critic_weight=0.0,
)
# Per-class coverage: the share of a class's samples on its own two modes, and on each of them
# (a fair split is 0.5 each).
ON_CLASS = 0.9
PER_MODE = 0.35


@pytest.fixture(scope="module")
def teacher(one_thread: None, tmp_path_factory: pytest.TempPathFactory) -> ToyModel:
    return train_teacher(SEED, TEACHER_STEPS, tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def teacher_scores(teacher: ToyModel) -> dict[str, float]:
    return {
        str(steps): score(teacher.denoiser, teacher, SamplerSettings("euler", steps, 1.0))[0]
        for steps in (100, 4)
    }


@pytest.fixture(scope="module")
def distilled(teacher: ToyModel, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The distillation run: its trainer and run folder, the student's score and per-class
    mode shares, the times the student ran at, and whether the teacher stayed untouched."""
    run = tmp_path_factory.mktemp("distill") / "run"
    before = {k: v.clone() for k, v in teacher.denoiser.state_dict().items()}
    trainer = distill_trainer(teacher, SETTINGS, DISTILL_STEPS, SEED, run)
    times: set[float] = set()
    trainer.task.student.register_forward_hook(
        lambda _m, args, _out: times.update(args[1].tolist())
    )
    trainer.fit()
    after = teacher.denoiser.state_dict()
    student, sampler = exported_student(run / "model")
    student_score, shares = score(student, teacher, sampler)
    return {
        "trainer": trainer,
        "run": run,
        "score": student_score,
        "shares": shares,
        "sampler": sampler,
        "times": times,
        "teacher_untouched": all(torch.equal(before[k], after[k]) for k in before),
    }


def score(
    denoiser: torch.nn.Module, teacher: ToyModel, sampler: SamplerSettings
) -> tuple[float, torch.Tensor]:
    """Mean energy distance over EVAL_SEEDS sample sets, and the pooled per-class mode shares."""
    runs = [generate(denoiser, teacher.conditioner, sampler, EVAL_SAMPLES, s) for s in EVAL_SEEDS]
    distance = sum(energy_distance_to_mixture(x) for x, _ in runs) / len(runs)
    shares = class_mode_shares(torch.cat([x for x, _ in runs]), torch.cat([y for _, y in runs]))
    return distance, shares


# --------------------------------------------------------------------------- the measures


def test_rice_mean_limits() -> None:
    sigma = 0.3
    assert float(rice_mean(torch.zeros(1), sigma)) == pytest.approx(sigma * math.sqrt(math.pi / 2))
    far = torch.tensor([50.0], dtype=torch.float64)
    assert float(rice_mean(far, sigma)) == pytest.approx(50 + sigma**2 / 100, abs=1e-6)


def test_closed_form_mixture_terms_match_monte_carlo(one_thread: None) -> None:
    g = torch.Generator().manual_seed(0)
    y, _ = sample_mixture(400_000, g)
    y2, _ = sample_mixture(400_000, g)
    x = torch.tensor([[0.0, 0.0], [4.0, 0.1], [2.0, -3.0]], dtype=torch.float64)
    monte_carlo = torch.cdist(x, y.double()).mean(1)
    torch.testing.assert_close(mean_distance_to_mixture(x), monte_carlo, rtol=0, atol=0.02)
    pairs = (y.double() - y2.double()).norm(dim=1).mean()
    assert mixture_self_distance() == pytest.approx(float(pairs), abs=0.02)


def test_chunked_pairwise_distance_matches_dense() -> None:
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dense = float(torch.cdist(x, x).sum()) / (300 * 299)
    assert mean_pairwise_distance(x, chunk=64) == pytest.approx(dense, rel=1e-12)


def test_energy_distance_of_true_samples_is_within_noise_floor(one_thread: None) -> None:
    scores = [
        energy_distance_to_mixture(
            sample_mixture(EVAL_SAMPLES, torch.Generator().manual_seed(s))[0]
        )
        for s in range(2)
    ]
    assert max(abs(s) for s in scores) <= NOISE_FLOOR, scores
    shifted = sample_mixture(2000, torch.Generator().manual_seed(0))[0] + 0.5
    assert energy_distance_to_mixture(shifted) > 0.1


def test_class_mode_shares_see_collapse_and_wrong_classes() -> None:
    x, labels = sample_mixture(EVAL_SAMPLES, torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        class_mode_shares(x, labels), torch.full((CLASSES, 2), 0.5).double(), atol=0.03, rtol=0
    )
    half_plane = torch.tensor([math.cos(math.pi / 8), math.sin(math.pi / 8)])
    collapsed = torch.where(x @ half_plane >= 0, 1.0, -1.0)[:, None] * x  # one mode per class
    assert class_mode_shares(collapsed, labels).min() == 0.0
    wrong = class_mode_shares(x, (labels + 1) % CLASSES)
    assert wrong.sum(1).max() < 0.05


# --------------------------------------------------------------------------- the teacher


def test_teacher_error_is_well_above_noise_floor(teacher_scores: dict[str, float]) -> None:
    assert teacher_scores["100"] >= 10 * NOISE_FLOOR, teacher_scores
    assert teacher_scores["4"] > teacher_scores["100"], teacher_scores


# --------------------------------------------------------------------------- the distillation


def test_four_step_student_beats_the_teachers_four_steps(
    distilled: dict, teacher_scores: dict[str, float]
) -> None:
    assert distilled["sampler"] == SamplerSettings("student", 4, 1.0, 1.0)
    student = distilled["score"]
    assert student <= 1.5 * teacher_scores["100"], (student, teacher_scores)
    assert student <= 0.5 * teacher_scores["4"], (student, teacher_scores)
    assert distilled["teacher_untouched"]


def test_four_step_student_covers_both_modes_of_every_class(distilled: dict) -> None:
    shares = distilled["shares"]
    assert shares.sum(1).min() >= ON_CLASS, shares
    assert shares.min() >= PER_MODE, shares


def test_the_trainer_updates_critic_and_generator_at_the_configured_ratio(distilled: dict) -> None:
    trainer, run = distilled["trainer"], distilled["run"]
    updates = {
        name: {int(s["step"]) for s in opt.optimizer.state.values()}
        for name, opt in trainer.optimizers.items()
    }
    assert updates == {
        "critic": {DISTILL_STEPS},
        "generator": {DISTILL_STEPS // SETTINGS.critic_updates},
    }
    rows = [json.loads(line) for line in (run / "logs/metrics.jsonl").read_text().splitlines()]
    generator_steps = [r["step"] for r in rows if "generator/loss" in r]
    every = SETTINGS.critic_updates
    assert generator_steps == list(range(every, DISTILL_STEPS + 1, every))


def test_the_student_trains_on_exactly_its_own_timesteps(distilled: dict) -> None:
    assert sorted(distilled["times"]) == sorted(SETTINGS.student_steps)


def test_the_real_score_is_the_teacher_guided_against_its_null(
    teacher: ToyModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_loss = student_module.distribution_matching_loss

    def spy(x, real_velocity, fake_velocity, *args):
        calls.append(real_velocity)
        return real_loss(x, real_velocity, fake_velocity, *args)

    monkeypatch.setattr(student_module, "distribution_matching_loss", spy)
    cfg = 3.0
    settings = DistillConfig(teacher_cfg=cfg, gan_weight=0.0, gan_critic_weight=0.0)
    trainer = distill_trainer(teacher, settings, 1, SEED, tmp_path, batch=8)
    ctx = trainer.context()
    data = MixtureClips(8, SEED)
    task = trainer.task
    b = task.prepare(collate_clips([data[i] for i in range(8)]), ctx)
    task.generator_losses(b, ctx)
    (real_velocity,) = calls
    g = torch.Generator().manual_seed(0)
    x_t, t = 3 * torch.randn(8, 2, 1, generator=g), torch.rand(8, generator=g)
    with torch.no_grad():
        v_cond = teacher.denoiser(x_t, t, b.cond)
        v_null = teacher.denoiser(x_t, t, teacher.conditioner.unconditional(8, 1, DURATION))
        assert (v_cond - v_null).abs().mean() > 0.1
        expected = v_null + cfg * (v_cond - v_null)
        torch.testing.assert_close(real_velocity(x_t, t), expected, rtol=1e-4, atol=1e-5)
