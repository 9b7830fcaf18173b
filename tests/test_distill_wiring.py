"""The distillation task's wiring, checked through the task and the training loop the product
uses (tiny preset, random teacher): the real score is the teacher with CFG and the fake score
is the fake-score network (a swap flips the DMD gradient), the GAN term reaches the student
while the critic's weights take no gradient, the student runs on its own timesteps, and the
two time scales alternate as configured."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import audiox_turbo.train.student as student_module
from audiox_turbo.data.dataset import collate
from audiox_turbo.flow.sampling import student_timesteps
from audiox_turbo.model.generation import conditioned_velocity
from audiox_turbo.pipeline import AudioXTurbo
from audiox_turbo.train.run_config import DistillConfig
from audiox_turbo.train.student import DistillTask
from audiox_turbo.train.trainer import Trainer
from conftest import randomize_
from test_distill_train import LatentClips, train_config


def task_and_context(tmp_path: Path, settings: DistillConfig, steps: int = 1):
    """A DistillTask on a random tiny teacher, its Trainer, and one collated batch of 4."""
    teacher = AudioXTurbo.from_preset("tiny")
    randomize_(teacher.denoiser, seed=1, std=0.05)
    task = DistillTask(teacher, train_config(steps), settings)
    randomize_(task.fake_score, seed=7, std=0.05)  # a fake score unlike the teacher
    dataset = LatentClips(teacher.config.codec.latent_dim)
    trainer = Trainer(
        task, train_config(steps), tmp_path, dataset, collate, progress=False, cpu=True
    )
    return task, trainer, collate([dataset[i] for i in range(4)])


def test_dmd_reads_the_teacher_as_real_and_the_fake_score_as_fake(tmp_path, monkeypatch):
    calls = []
    real_loss = student_module.distribution_matching_loss

    def spy(x, real_velocity, fake_velocity, *args):
        calls.append((real_velocity, fake_velocity))
        return real_loss(x, real_velocity, fake_velocity, *args)

    monkeypatch.setattr(student_module, "distribution_matching_loss", spy)
    settings = DistillConfig(teacher_cfg=3.0, gan_weight=0.0, gan_critic_weight=0.0)
    task, trainer, batch = task_and_context(tmp_path, settings)
    ctx = trainer.context()
    b = task.prepare(batch, ctx)
    task.generator_losses(b, ctx)
    ((real_velocity, fake_velocity),) = calls
    g = torch.Generator().manual_seed(0)
    x_t, t = torch.randn(b.x0.shape, generator=g), torch.rand(4, generator=g)
    with torch.no_grad():
        teacher = conditioned_velocity(
            task.teacher.denoiser, task.teacher.conditioner, b.cond, 3.0, b.duration, b.mask
        )(x_t, t)
        fake = task.fake_score(x_t, t, b.cond, x_mask=b.mask)
        assert not torch.allclose(teacher, fake, atol=1e-3)
        torch.testing.assert_close(real_velocity(x_t, t), teacher)
        torch.testing.assert_close(fake_velocity(x_t, t), fake)


def test_gan_term_reaches_the_student_and_the_critic_weights_take_no_gradient(tmp_path):
    settings = DistillConfig(dmd_weight=0.0, gan_weight=1.0, gan_critic_weight=1.0)
    task, trainer, batch = task_and_context(tmp_path, settings)
    ctx = trainer.context()
    losses = task.generator_losses(task.prepare(batch, ctx), ctx)
    losses["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.student.parameters())
    for net in (task.fake_score, task.discriminator):
        assert all(p.grad is None for p in net.parameters())
        assert all(p.requires_grad for p in net.parameters())  # restored after the phase
    critic = task.critic_losses(task.prepare(batch, ctx), ctx)
    critic["loss"].backward()
    assert any(p.grad is not None for p in task.discriminator.parameters())


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_the_discriminator_reads_the_batch_fraction_it_is_given(tmp_path, monkeypatch, fraction):
    """The critic's one fake-score forward holds the n score rows and m = fraction · n rows
    each of noised real and noised fake (the batch's first m, with their own conditions and
    frame masks); the flow loss reads the score and fake rows, the discriminator the last 2m."""
    settings = DistillConfig(gan_weight=0.0, gan_critic_weight=1.0, gan_batch_fraction=fraction)
    task, trainer, batch = task_and_context(tmp_path, settings)
    ctx = trainer.context()
    b = task.prepare(batch, ctx)
    n, m = 4, round(4 * fraction)
    calls, flow_masks, heads = [], [], []
    task.fake_score.register_forward_pre_hook(
        lambda _m, args, kwargs: calls.append((args[2], args[3])), with_kwargs=True
    )
    task.discriminator.register_forward_pre_hook(lambda _m, args: heads.append(args))
    real_loss = student_module.fake_score_loss

    def spy(velocity, x, t, eps, mask=None):
        flow_masks.append(mask)
        return real_loss(velocity, x, t, eps, mask=mask)

    monkeypatch.setattr(student_module, "fake_score_loss", spy)
    task.critic_losses(b, ctx)
    ((cond, mask),) = calls
    rows = [*range(n), *range(m), *range(m)]
    assert cond.batch_size == n + 2 * m
    torch.testing.assert_close(cond.text.tokens, b.cond.text.tokens[rows])
    torch.testing.assert_close(cond.pooled, b.cond.pooled[rows])
    assert torch.equal(mask, b.mask[rows])
    assert torch.equal(flow_masks[0], b.mask[[*range(n), *range(m)]])
    ((features, head_mask),) = heads
    assert all(f.shape[0] == 2 * m for f in features)
    assert torch.equal(head_mask, b.mask[[*range(m), *range(m)]])


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_the_critic_reads_real_rows_before_fake_rows(tmp_path, fraction):
    """At the discriminator's noise levels (here t <= 0.01) the critic's rows n..n+m are the
    batch's real latents and the last m the generator's samples, in that order (the
    discriminator's loss reads its first half as real)."""
    settings = DistillConfig(gan_critic_weight=1.0, gan_max_t=0.01, gan_batch_fraction=fraction)
    task, trainer, batch = task_and_context(tmp_path, settings)
    ctx = trainer.context()
    b = task.prepare(batch, ctx)
    task.generator_losses(b, ctx)
    seen = []
    task.fake_score.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    task.critic_losses(b, ctx)
    n, m = 4, round(4 * fraction)
    x_fake = b.sample[0]
    rows = seen[0]
    assert (rows[n : n + m] - b.x0[:m]).abs().max() < 0.05
    assert (rows[n + m :] - x_fake[:m]).abs().max() < 0.05
    assert (b.x0[:m] - x_fake[:m]).abs().max() > 0.5


def test_the_student_runs_only_on_its_own_timesteps(tmp_path):
    steps = student_timesteps(4, shift=2.0).tolist()  # no time shared with the uniform grid
    settings = DistillConfig(student_steps=tuple(steps), critic_updates=2)
    task, trainer, _ = task_and_context(tmp_path, settings, steps=6)
    seen: list[torch.Tensor] = []
    task.student.register_forward_hook(lambda _m, args, _out: seen.append(args[1].detach()))
    trainer.fit()
    times = torch.cat(seen)
    assert len(seen) > 6
    distance = (times[:, None] - torch.tensor(steps)[None, :]).abs().min(1).values
    assert distance.max() < 1e-6, sorted(set(times.tolist()))
    assert {round(v, 6) for v in times.tolist()} > {round(steps[0], 6)}


@pytest.mark.parametrize("critic_updates", [1, 3])
def test_phases_alternate_at_the_configured_ratio(tmp_path, critic_updates):
    settings = DistillConfig(critic_updates=critic_updates)
    task, _, _ = task_and_context(tmp_path, settings)
    phases = [task.phases(step) for step in range(6)]
    generator_steps = [i for i, p in enumerate(phases) if "generator" in p]
    assert generator_steps == [i for i in range(6) if (i + 1) % critic_updates == 0]
    assert all(p[-1] == "critic" for p in phases)
    assert all(p == ["generator", "critic"] for p in phases if len(p) == 2)


def test_every_network_call_hides_the_padded_frames(tmp_path):
    """Student (backward simulation, DMD and regression inputs), fake score (DMD, GAN, critic)
    and teacher (real score, ODE pairs) all get the batch's frame mask, so padded frames never
    reach attention."""
    settings = DistillConfig(critic_updates=1, regression_weight=0.5, gan_weight=0.5)
    task, trainer, batch = task_and_context(tmp_path, settings)
    assert not batch["latent_mask"].all()
    networks = {"student": task.student, "fake_score": task.fake_score}
    networks["teacher"] = task.teacher.denoiser
    masks: dict[str, list] = {name: [] for name in networks}

    def recorder(name):
        def hook(_module, args, kwargs):
            masks[name].append(args[3] if len(args) > 3 else kwargs.get("x_mask"))

        return hook

    for name, net in networks.items():
        net.register_forward_pre_hook(recorder(name), with_kwargs=True)
    steps = []
    for step in range(4):
        ctx = trainer.context()
        ctx = dataclasses.replace(ctx, step=step, generator=torch.Generator().manual_seed(step))
        for phase in task.phases(step):
            task.training_step(batch, phase, ctx)
        steps.append(task.prepare(batch, ctx).sample[1])
    assert max(steps) > 0  # backward simulation ran the student at least once
    expected = batch["latent_mask"]
    for name, seen in masks.items():
        assert seen, name
        for mask in seen:
            assert mask is not None, f"{name} attended padded frames"
            assert torch.equal(mask, expected.repeat(mask.shape[0] // len(expected), 1)), name


def fixed_student_input(task: DistillTask, b, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Make the task's generator phase start at student step k from a fixed state x_t."""
    x_t = torch.randn(b.x0.shape, generator=torch.Generator().manual_seed(3))
    t = task.timesteps[k].to(x_t.dtype).expand(len(x_t))
    task.student_input = lambda _b, _ctx: (x_t, t, k)
    return x_t, t


def test_refinement_regresses_the_guided_teacher_ode_from_the_students_own_state(tmp_path):
    """At the last student step, the student's x0 from its own state x_t regresses the teacher's
    guided Euler ODE from x_t to 0 (float64 reference: from t = 0.25, two steps of a grid of
    eight); the gradient reaches the student, lowers the term when followed, and leaves the
    teacher untouched."""
    settings = DistillConfig(
        teacher_cfg=3.0, dmd_weight=0.0, gan_weight=0.0, refine_weight=1.0, refine_teacher_steps=8
    )
    task, trainer, batch = task_and_context(tmp_path, settings)
    ctx = trainer.context()
    b = task.prepare(batch, ctx)
    x_t, t = fixed_student_input(task, b, k=3)
    losses = task.generator_losses(b, ctx)
    with torch.no_grad():
        teacher = conditioned_velocity(
            task.teacher.denoiser, task.teacher.conditioner, b.cond, 3.0, b.duration, b.mask
        )
        x, t0 = x_t.double(), float(t[0])
        for start, end in ((t0, t0 / 2), (t0 / 2, 0.0)):
            v = teacher(x.float(), torch.full_like(t, start)).double()
            x = x + (end - start) * v
        student_x0 = x_t.double() - t0 * task.student(x_t, t, b.cond, x_mask=b.mask).double()
        weight = b.mask[:, None, :].double().expand_as(x)
        expected = ((student_x0 - x) ** 2 * weight).sum() / weight.sum()
    assert losses["refine"].item() == pytest.approx(expected.item(), rel=1e-4)
    losses["loss"].backward()
    assert all(p.grad is None for p in task.teacher.denoiser.parameters())
    with torch.no_grad():
        for p in task.student.parameters():
            if p.grad is not None:
                p -= 1e-3 * p.grad
    assert task.generator_losses(b, ctx)["refine"] < losses["refine"]


def test_refinement_applies_to_the_last_refine_steps_only(tmp_path):
    settings = DistillConfig(gan_weight=0.0, refine_weight=1.0, refine_steps=2)
    task, trainer, batch = task_and_context(tmp_path, settings)
    ctx = trainer.context()
    b = task.prepare(batch, ctx)
    refined = []
    for k in range(4):
        fixed_student_input(task, b, k)
        refined.append("refine" in task.generator_losses(b, ctx))
    assert refined == [False, False, True, True]


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one mixed-precision setting per process: clear it around a test that
    asks for another (its own test utilities do the same)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


@pytest.mark.usefixtures("fresh_accelerator_state")
def test_bf16_precision_autocasts_the_trained_networks_and_not_the_teacher(tmp_path):
    """`train.precision` bf16 on the CPU: student and fake score run under bf16 autocast (their
    weights stay float32), the frozen teacher, the real score, in float32."""
    teacher = AudioXTurbo.from_preset("tiny")
    settings = DistillConfig(critic_updates=1, regression_weight=0.5, gan_weight=0.5)
    config = train_config(1, precision="bf16")
    task = DistillTask(teacher, config, settings)
    dataset = LatentClips(teacher.config.codec.latent_dim)
    trainer = Trainer(task, config, tmp_path, dataset, collate, progress=False, cpu=True)
    networks = {"student": task.student, "fake_score": task.fake_score}
    networks["teacher"] = task.teacher.denoiser
    modes: dict[str, set] = {name: set() for name in networks}

    def recorder(name):
        def hook(_module, _args):
            on = torch.is_autocast_enabled("cpu")
            modes[name].add(torch.get_autocast_dtype("cpu") if on else None)

        return hook

    for name, net in networks.items():  # a first layer's hook runs inside the forward
        net.latent_in.register_forward_pre_hook(recorder(name))
    ctx = trainer.context()
    batch = collate([dataset[i] for i in range(4)])
    for phase in task.phases(0):
        losses = task.training_step(batch, phase, ctx)
        losses["loss"].backward()
        assert torch.isfinite(losses["loss"])
    assert modes == {"student": {torch.bfloat16}, "fake_score": {torch.bfloat16}, "teacher": {None}}
    assert all(p.dtype == torch.float32 for p in task.student.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.student.parameters())
