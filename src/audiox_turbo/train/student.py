"""Distillation task: DMD in flow-matching form + diffusion discriminator -> a few-step student.

Networks (docs/architecture.md, "DMD adapted to flow matching"): the frozen teacher (conditioner +
denoiser, optionally bf16), the student and the fake score (both copies of the teacher's
denoiser) and the discriminator head on the fake score's block features. The teacher's
conditioner is shared and frozen: every network sees the same `Conditions`, and the export
pairs it with the student's denoiser.

Two time scales (`phases`): the critic (fake score + head) updates every iteration, the
generator (student) on every `critic_updates`-th iteration, before the critic. As in DMD2, a
step prepares its conditions once, the generator's sample is also the critic's (no second
backward simulation), and the critic's weights take no gradient in the generator phase.
Each trained network runs at most one forward with autograd on per phase (batched), so the
step is DDP-safe.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from audiox_turbo.codec.oobleck import OobleckVAE
from audiox_turbo.conditioning.conditioner import Conditioner, Conditions
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.config import ModelConfig, SamplerDefaults
from audiox_turbo.distill.discriminator import (
    GAN_LOSSES,
    DiscriminatorHead,
    discriminator_logits,
    gan_discriminator_loss,
    gan_generator_loss,
    sample_gan_timesteps,
)
from audiox_turbo.distill.dmd import (
    TwoTimescaleSchedule,
    backward_simulate,
    distribution_matching_loss,
    fake_score_loss,
    noised_real_input,
    ode_states,
    regression_loss,
    sample_dmd_timesteps,
)
from audiox_turbo.errors import AudioXError
from audiox_turbo.flow.path import interpolate, x0_from_velocity
from audiox_turbo.flow.sampling import SamplerSettings, VelocityFn, sample_euler
from audiox_turbo.model.denoiser import Denoiser
from audiox_turbo.model.flow_model import FlowModel
from audiox_turbo.model.generation import conditioned_velocity, sample_latents
from audiox_turbo.model_dir import NATIVE_COMPONENTS, save_model_dir
from audiox_turbo.train.run_config import DistillConfig, TeacherTrainingConfig, TrainConfig
from audiox_turbo.train.task import AudioSample, OptimizerSpec, StepContext, Task
from audiox_turbo.train.teacher import VALIDATION_SEED, TeacherTask


class TeacherModel(Protocol):
    """What distillation takes from a trained teacher (an `AudioXTurbo` is one)."""

    config: ModelConfig
    codec: OobleckVAE
    conditioner: Conditioner
    denoiser: Denoiser


def student_shift(steps: Sequence[float]) -> float:
    """The shift s with student_timesteps(len(steps), s) == steps; ValueError if there is none."""
    n = len(steps)
    if n == 0 or steps[0] != 1.0:
        raise ValueError(f"student_steps must start at 1.0, got {list(steps)}")
    if n == 1:
        return 1.0
    u, t = (n - 1) / n, steps[1]
    if not 0.0 < t < 1.0:
        raise ValueError(f"student_steps after the first must lie in (0, 1), got {list(steps)}")
    shift = t * (1 - u) / (u * (1 - t))
    grid = [1 - i / n for i in range(n)]
    expected = [shift * g / (1 + (shift - 1) * g) for g in grid]
    if any(not math.isclose(a, b, abs_tol=1e-6) for a, b in zip(steps, expected, strict=True)):
        raise ValueError(
            f"student_steps {list(steps)} are not a (shifted) uniform grid, which is what "
            "`generate` samples the exported student on"
        )
    return shift


def check_distill_config(config: DistillConfig, source: str) -> None:
    """Raise a one-line AudioXError naming `source` for settings that cannot work."""
    problems = []
    try:
        student_shift(config.student_steps)
    except ValueError as e:
        problems.append(str(e))
    if config.critic_updates < 1:
        problems.append(f"critic_updates must be >= 1, got {config.critic_updates}")
    if config.regression_pool < 1:
        problems.append(f"regression_pool must be >= 1, got {config.regression_pool}")
    if config.gan_loss not in GAN_LOSSES:
        problems.append(f"gan_loss {config.gan_loss!r} unknown; use one of {', '.join(GAN_LOSSES)}")
    if not 0.0 <= config.t_min < config.t_max <= 1.0:
        problems.append(f"need 0 <= t_min < t_max <= 1, got {config.t_min}, {config.t_max}")
    if config.t_shift <= 0:
        problems.append(f"t_shift must be > 0, got {config.t_shift}")
    if not 0.0 < config.gan_batch_fraction <= 1.0:
        problems.append(f"gan_batch_fraction must be in (0, 1], got {config.gan_batch_fraction}")
    if not 0.0 < config.gan_max_t <= 1.0:
        problems.append(f"gan_max_t must be in (0, 1], got {config.gan_max_t}")
    if not config.gan_layers:
        problems.append("gan_layers must name at least one feature layer")
    if not 1 <= config.refine_steps <= len(config.student_steps):
        problems.append(
            f"refine_steps must be in 1..{len(config.student_steps)}, got {config.refine_steps}"
        )
    if config.refine_teacher_steps < 1:
        problems.append(f"refine_teacher_steps must be >= 1, got {config.refine_teacher_steps}")
    weights = (
        "teacher_cfg",
        "dmd_weight",
        "gan_weight",
        "gan_critic_weight",
        "regression_weight",
        "refine_weight",
    )
    problems += [f"{w} must be >= 0" for w in weights if not getattr(config, w) >= 0]
    if problems:
        raise AudioXError(f"{source}: distill: {'; '.join(problems)}")


@dataclass
class DistillBatch:
    """Clean latents x0 (B, D, T), frame mask (B, T) bool, conditions and their duration (s);
    `sample`: the generator's detached student sample (B, D, T) and its step k, once made."""

    x0: Tensor
    mask: Tensor
    cond: Conditions
    duration: float
    sample: tuple[Tensor, int] | None = None


@dataclass
class OdePairs:
    """Teacher ODE pairs of one batch: its states at the student's K times (K, B, D, T), the
    first being the noise, -> target (B, D, T) under cond, with its frame mask (B, T); `key`
    the shapes a batch must have to share them."""

    key: tuple[int, ...]
    cond: Conditions
    mask: Tensor
    states: Tensor
    target: Tensor

    @property
    def noise(self) -> Tensor:
        """The ODE's starting noise (B, D, T), its state at t = 1."""
        return self.states[0]

    def to(self, device: torch.device | str) -> OdePairs:
        """The same pairs on `device`."""
        c, m, s, t = self.cond.to(device), self.mask.to(device), self.states, self.target
        return OdePairs(self.key, c, m, s.to(device), t.to(device))

    def tensors(self) -> dict[str, Any]:
        """A checkpointable dict (tensors, ints); `from_tensors` inverts it."""
        cond = {f"cond.{k}": v for k, v in self.cond.tensors().items()}
        pairs = {"mask": self.mask, "states": self.states, "target": self.target}
        return {"key": list(self.key), **cond, **pairs}

    @staticmethod
    def from_tensors(flat: dict[str, Any]) -> OdePairs:
        """The pairs that `tensors` flattened."""
        cond = {k.removeprefix("cond."): v for k, v in flat.items() if k.startswith("cond.")}
        conditions = Conditions.from_tensors(cond)
        return OdePairs(
            tuple(flat["key"]), conditions, flat["mask"], flat["states"], flat["target"]
        )


def _shape_key(b: DistillBatch) -> tuple[int, ...]:
    """Latent and condition-token shapes of a batch (what batching with it needs to match)."""
    c = b.cond
    return (*b.x0.shape, c.text.tokens.shape[1], c.video.tokens.shape[1], c.audio.tokens.shape[1])


class DistillTask(Task):
    """Distils a teacher model into a few-step student with DMD + a diffusion discriminator."""

    def __init__(
        self,
        teacher: TeacherModel,
        train_config: TrainConfig,
        settings: DistillConfig,
        validation_prompts: Sequence[str] = (),
        validation_seconds: float = 1.0,
        seed: int = 0,
    ) -> None:
        """The teacher's codec and conditioner are reused as they are, its denoiser copied
        (and cast to bfloat16 in the copy with `teacher_bf16`, never in place)."""
        check_distill_config(settings, "distill settings")
        self.model_config: ModelConfig = teacher.config
        self.settings = settings
        self.schedule = TwoTimescaleSchedule(settings.critic_updates)
        self.timesteps = torch.tensor(settings.student_steps, dtype=torch.float64)
        self.shift = student_shift(settings.student_steps)
        self.validation_prompts = tuple(validation_prompts)
        self.validation_seconds = validation_seconds
        teacher_denoiser = teacher.denoiser
        if settings.teacher_bf16:
            teacher_denoiser = copy.deepcopy(teacher_denoiser).to(torch.bfloat16)
        self.data = TeacherTask(
            teacher.config,
            train_config,
            TeacherTrainingConfig(validation_prompts=()),
            codec=teacher.codec,
            conditioner=teacher.conditioner,
            denoiser=teacher_denoiser,
        )
        self.codec = self.data.codec
        self.teacher: FlowModel = self.data.flow
        self.student = _trainable_copy(teacher.denoiser)
        self.fake_score = _trainable_copy(teacher.denoiser)
        self.teacher.eval().requires_grad_(False)
        self.prepared: dict[int, DistillBatch] = {}
        self.prepared_step = -1
        self.ode_pairs: list[OdePairs] = []
        self.gan = settings.gan_weight > 0 or settings.gan_critic_weight > 0
        self.discriminator: DiscriminatorHead | None = None
        if self.gan:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.discriminator = DiscriminatorHead(
                    self.model_config.denoiser.dim, settings.gan_layers
                )

    # engine protocol ---------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        modules = {
            "teacher": self.teacher,
            "codec": self.codec,
            "student": self.student,
            "fake_score": self.fake_score,
        }
        if self.discriminator is not None:
            modules["discriminator"] = self.discriminator
        return modules

    def optimizers(self) -> dict[str, OptimizerSpec]:
        critic = ("fake_score", "discriminator") if self.gan else ("fake_score",)
        return {
            "critic": OptimizerSpec(critic, lr=self.settings.critic_lr),
            "generator": OptimizerSpec(
                ("student",),
                lr=self.settings.generator_lr,
                update_every=self.settings.critic_updates,
            ),
        }

    def phases(self, step: int) -> list[str]:
        """Critic every step; the generator first when the two-time-scale rule says so (its
        sample then trains the critic, as in DMD2)."""
        return ["generator", "critic"] if self.schedule.updates_generator(step) else ["critic"]

    def ema_modules(self) -> list[str]:
        return ["student"]

    def batch_stats(self, batch: dict[str, Any]) -> tuple[int, int]:
        return self.data.batch_stats(batch)

    def state_dict(self) -> dict[str, Any]:
        """The pool of teacher ODE pairs, so that a resumed run does not remake it (it costs
        `regression_pool` teacher ODEs) and continues as an uninterrupted one would."""
        return {"ode_pairs": [p.tensors() for p in self.ode_pairs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ode_pairs = [OdePairs.from_tensors(p) for p in state.get("ode_pairs", [])]

    def training_step(
        self, batch: dict[str, Any], phase: str, ctx: StepContext
    ) -> dict[str, Tensor]:
        prepared = self.prepare(batch, ctx)
        if phase == "critic":
            return self.critic_losses(prepared, ctx)
        return self.generator_losses(prepared, ctx)

    # the two phases ----------------------------------------------------------------------
    def prepare(self, batch: dict[str, Any], ctx: StepContext) -> DistillBatch:
        """Latents and the (frozen, no-dropout) teacher conditions of a micro-batch, made once
        per step: the step's phases share them (and the generator's sample)."""
        if self.prepared_step != ctx.step:
            self.prepared, self.prepared_step = {}, ctx.step
        if id(batch) not in self.prepared:
            b = self.data.latents_and_inputs(batch, ctx)
            teacher: FlowModel = ctx.modules["teacher"]
            with torch.no_grad():
                cond = teacher.condition(b.inputs, b.x0.shape[-1], b.duration)
            self.prepared[id(batch)] = DistillBatch(b.x0, b.mask, cond, b.duration)
        return self.prepared[id(batch)]

    def student_input(self, b: DistillBatch, ctx: StepContext) -> tuple[Tensor, Tensor, int]:
        """x_t (B, D, T) and t (B,) at a random student step k, and k (no grad).

        Backward simulation runs the student itself k steps from noise; otherwise real latents
        are noised to t_k.
        """
        steps = len(self.timesteps)
        k = int(torch.randint(steps, (1,), generator=ctx.generator, device=ctx.device))
        if not self.settings.backward_simulation:
            x_t, t_k = noised_real_input(b.x0, self.timesteps, k, ctx.generator)
            return x_t, t_k, k
        noise = _randn_like(b.x0, ctx)
        velocity = partial(ctx.modules["student"], cond=b.cond, x_mask=b.mask)
        x_t, t_k = backward_simulate(velocity, noise, self.timesteps, k, ctx.generator)
        return x_t, t_k, k

    def critic_losses(self, b: DistillBatch, ctx: StepContext) -> dict[str, Tensor]:
        """Fake-score flow matching on detached student samples (+ the discriminator's loss).

        The sample is the generator's of this step, else made here. One batched fake-score
        forward: [score input at t (n rows), noised real, noised fake at the discriminator's t
        (m rows each: the batch's first `gan_batch_fraction`)]; the flow loss reads the first
        and last parts (so the fake score is trained where the discriminator reads it), the
        discriminator the last two.
        """
        s = self.settings
        n = b.x0.shape[0]
        m = max(1, round(n * s.gan_batch_fraction))
        if b.sample is not None:
            x_fake, k = b.sample
        else:
            with torch.no_grad():
                x_t, t_k, k = self.student_input(b, ctx)
                v = ctx.modules["student"](x_t, t_k, b.cond, b.mask)
                x_fake = x0_from_velocity(x_t, t_k, v)
        xs, ts, eps = [x_fake], [self._dmd_timesteps(n, ctx)], [_randn_like(b.x0, ctx)]
        conds, masks = [b.cond], [b.mask]
        if self.gan:
            t_gan = sample_gan_timesteps(2 * m, s.gan_max_t, ctx.generator, ctx.device)
            xs.append(x_fake[:m])
            ts.append(t_gan[m:])
            eps.append(_randn_like(b.x0[:m], ctx))
            noised_real = interpolate(b.x0[:m], _randn_like(b.x0[:m], ctx), t_gan[:m])
            head = b.cond.head(m)
            conds, masks = [b.cond, head, head], [b.mask, b.mask[:m], b.mask[:m]]
        features: list[Tensor] = []

        def score_velocity(x_score: Tensor, t_score: Tensor) -> Tensor:
            if self.gan:  # [score, noised real, noised fake]: the discriminator's pair in order
                x_score = torch.cat([x_score[:n], noised_real, x_score[n:]])
                t_score = torch.cat([t_score[:n], t_gan[:m], t_score[n:]])
            v, feats = ctx.modules["fake_score"](
                x_score, t_score, Conditions.cat(conds), torch.cat(masks), return_features=True
            )
            features.extend(feats)
            return torch.cat([v[:n], v[n + m :]]).float() if self.gan else v.float()

        score = fake_score_loss(
            score_velocity,
            torch.cat(xs),
            torch.cat(ts),
            torch.cat(eps),
            mask=torch.cat([masks[0], *masks[2:]]),
        )
        losses = {"fake_score": score, "student_step": torch.tensor(float(k))}
        loss = score
        if self.gan:
            logits = ctx.modules["discriminator"]([f[n:] for f in features], torch.cat(masks[1:]))
            logits_real, logits_fake = logits.float().chunk(2)
            gan = gan_discriminator_loss(logits_real, logits_fake, s.gan_loss)
            loss = loss + s.gan_critic_weight * gan
            losses |= {
                "gan_critic": gan,
                "logits_real": logits_real.mean(),
                "logits_fake": logits_fake.mean(),
            }
        return {"loss": loss, **losses}

    def generator_losses(self, b: DistillBatch, ctx: StepContext) -> dict[str, Tensor]:
        """DMD loss (+ GAN generator term, + regression on teacher ODE pairs) of the student.

        The regression anchor (DMD) is the student's output from a pair's noise (or, with
        `regression_trajectory`, from its ODE state at a random student step) against the
        teacher's ODE endpoint from the same noise and conditions, batched with the DMD
        input. Its detached sample is kept in `b` for the critic phase of the step.
        """
        s = self.settings
        n = b.x0.shape[0]
        x_t, t_k, k = self.student_input(b, ctx)
        xs, ts, conds, masks = [x_t], [t_k], [b.cond], [b.mask]
        if s.regression_weight > 0:
            pairs = self.ode_pairs_for(b, ctx)
            x_pair, t_pair = self.regression_input(pairs, ctx)
            xs.append(x_pair)
            ts.append(t_pair.to(t_k.dtype))
            conds.append(pairs.cond)
            masks.append(pairs.mask)
        x_in, t_in = torch.cat(xs), torch.cat(ts)
        v = ctx.modules["student"](x_in, t_in, Conditions.cat(conds), torch.cat(masks))
        x0 = x0_from_velocity(x_in, t_in, v)
        x_fake = x0[:n]
        b.sample = (x_fake.detach(), k)
        with critic_weights_frozen(ctx):
            losses = self.critic_judged_terms(b, x_fake, ctx)
        loss = s.dmd_weight * losses["dmd"] + s.gan_weight * losses.get("gan", 0.0)
        if s.regression_weight > 0:
            losses["regression"] = regression_loss(x0[n:], pairs.target, pairs.mask)
            loss = loss + s.regression_weight * losses["regression"]
        if s.refine_weight > 0 and k >= len(self.timesteps) - s.refine_steps:
            target = self.teacher_refinement(b, x_t, t_k, ctx)
            losses["refine"] = regression_loss(x_fake, target, b.mask)
            loss = loss + s.refine_weight * losses["refine"]
        return {"loss": loss, **losses, "student_step": torch.tensor(float(k))}

    def ode_pairs_for(self, b: DistillBatch, ctx: StepContext) -> OdePairs:
        """Teacher ODE pairs shaped like batch b: made from b's conditions and fresh noise
        while the pool holds fewer than `regression_pool` batches (or none of b's shapes),
        else a stored batch of them drawn at random."""
        key = _shape_key(b)
        self.ode_pairs = [p.to(b.x0.device) for p in self.ode_pairs]  # resumed: on the CPU
        stored = [p for p in self.ode_pairs if p.key == key]
        if stored and len(self.ode_pairs) >= self.settings.regression_pool:
            pick = torch.randint(len(stored), (1,), generator=ctx.generator, device=ctx.device)
            return stored[int(pick)]
        noise = _randn_like(b.x0, ctx)
        with torch.no_grad():
            states, target = self.teacher_ode(b, noise, ctx)
        pairs = OdePairs(key, b.cond, b.mask, states, target)
        self.ode_pairs = [*self.ode_pairs, pairs][-self.settings.regression_pool :]
        return pairs

    def regression_input(self, pairs: OdePairs, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """The student's regression input (B, D, T) and times (B,): the pairs' noise at t = 1,
        or with `regression_trajectory` each pair's ODE state at a random student step."""
        n = pairs.target.shape[0]
        k = torch.zeros(n, dtype=torch.long, device=pairs.target.device)
        if self.settings.regression_trajectory:
            k = torch.randint(len(self.timesteps), (n,), generator=ctx.generator, device=k.device)
        t = self.timesteps.to(device=k.device, dtype=pairs.target.dtype)[k]
        return pairs.states[k, torch.arange(n, device=k.device)], t

    def critic_judged_terms(
        self, b: DistillBatch, x_fake: Tensor, ctx: StepContext
    ) -> dict[str, Tensor]:
        """The DMD term (teacher vs fake score) and, when on, the GAN generator term of the
        student sample x_fake (B, D, T); both carry gradient to x_fake only."""
        n = x_fake.shape[0]
        fake = ctx.borrowed("fake_score")
        terms = {
            "dmd": distribution_matching_loss(
                x_fake,
                self.teacher_velocity(b, ctx),
                partial(fake, cond=b.cond, x_mask=b.mask),
                self._dmd_timesteps(n, ctx),
                _randn_like(b.x0, ctx),
                b.mask,
            )
        }
        if self.settings.gan_weight > 0:
            logits = discriminator_logits(
                partial(fake, cond=b.cond, x_mask=b.mask, return_features=True),
                ctx.borrowed("discriminator"),
                x_fake,
                sample_gan_timesteps(n, self.settings.gan_max_t, ctx.generator, ctx.device),
                _randn_like(x_fake, ctx),
                b.mask,
            )
            terms["gan"] = gan_generator_loss(logits.float(), self.settings.gan_loss)
        return terms

    def teacher_velocity(self, b: DistillBatch, ctx: StepContext) -> VelocityFn:
        """The frozen teacher's velocity (x_t, t) -> v with CFG at `teacher_cfg` (the real
        score: the guided velocity of `generate`, against the learned nulls)."""
        teacher: FlowModel = ctx.modules["teacher"]
        with torch.no_grad():
            return conditioned_velocity(
                teacher.denoiser,
                teacher.conditioner,
                b.cond,
                self.settings.teacher_cfg,
                b.duration,
                x_mask=b.mask,
            )

    @torch.no_grad()
    def teacher_refinement(
        self, b: DistillBatch, x_t: Tensor, t: Tensor, ctx: StepContext
    ) -> Tensor:
        """The teacher's guided Euler ODE from the student's state x_t (B, D, T) at t (B,), all
        equal, to t = 0 in ceil(t · `refine_teacher_steps`) equal steps (the density of an
        Euler grid of that many steps over [0, 1]): its endpoint (B, D, T)."""
        start = float(t[0])
        steps = max(1, math.ceil(start * self.settings.refine_teacher_steps - 1e-9))
        grid = torch.linspace(start, 0.0, steps + 1, dtype=torch.float64)
        return sample_euler(self.teacher_velocity(b, ctx), x_t, grid)

    def teacher_ode(
        self, b: DistillBatch, noise: Tensor, ctx: StepContext
    ) -> tuple[Tensor, Tensor]:
        """Teacher ODE from `noise` (B, D, T) (Euler, the model's default steps with the
        student's times added, CFG): its states at the student's times (K, B, D, T) and its
        endpoint (B, D, T)."""
        sampler = self.model_config.sampler
        settings = SamplerSettings("euler", sampler.steps, self.settings.teacher_cfg, sampler.shift)
        velocity = self.teacher_velocity(b, ctx)
        return ode_states(velocity, noise, settings.timesteps(), self.timesteps)

    # validation and export ---------------------------------------------------------------
    def samples(self, ctx: StepContext) -> list[AudioSample]:
        """The validation prompts through the (EMA) student as `generate` runs it (seed 0):
        its x0 estimate after each of its steps."""
        if not self.validation_prompts:
            return []
        teacher: FlowModel = ctx.modules["teacher"]
        student: Denoiser = ctx.unwrapped("student")
        n, duration = len(self.validation_prompts), self.validation_seconds
        inputs = ConditionInputs(n, text=list(self.validation_prompts))
        cond = teacher.condition(inputs, self.model_config.latent_frames(duration), duration)
        estimates: list[Tensor] = []

        def recording_student(x: Tensor, t: Tensor, cond: Conditions, **kwargs: Any) -> Tensor:
            v = student(x, t, cond, **kwargs)
            estimates.append(x0_from_velocity(x, t, v))
            return v

        settings = SamplerSettings("student", len(self.timesteps), 1.0, self.shift)
        sample_latents(
            recording_student, teacher.conditioner, cond, settings, VALIDATION_SEED, duration
        )
        rate, samples = self.model_config.codec.sample_rate, self.model_config.num_samples(duration)
        clips = []
        for step, x0 in enumerate(estimates, start=1):
            audio = ctx.modules["codec"].decode(x0.float()).clamp(-1, 1)[..., :samples]
            clips += [AudioSample(f"prompt{i}_step{step}", audio[i], rate) for i in range(n)]
        return clips

    def export(self, directory: Path, ctx: StepContext) -> None:
        """A model folder whose sampler is the student's: `generate` runs it in 4 steps, cfg 1."""
        sampler = SamplerDefaults(
            kind="student", steps=len(self.timesteps), cfg=1.0, method="student", shift=self.shift
        )
        config = dataclasses.replace(self.model_config, sampler=sampler, trained=True)
        modules = (self.codec, self.teacher.conditioner, ctx.unwrapped("student"))
        save_model_dir(directory, config, dict(zip(NATIVE_COMPONENTS, modules, strict=True)))

    def _dmd_timesteps(self, n: int, ctx: StepContext) -> Tensor:
        s = self.settings
        return sample_dmd_timesteps(n, s.t_min, s.t_max, s.t_shift, ctx.generator, ctx.device)


@contextmanager
def critic_weights_frozen(ctx: StepContext) -> Iterator[None]:
    """The fake score's and the discriminator's weights take no gradient inside (their inputs
    still pass it on to the student), as DMD2's generator step; sharded (FSDP) weights keep
    their flags, which FSDP fixes per flat parameter."""
    names = [n for n in ("fake_score", "discriminator") if n in ctx.modules]
    params = [] if ctx.sharded else [p for n in names for p in ctx.unwrapped(n).parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _trainable_copy(denoiser: Denoiser) -> Denoiser:
    """A float32 copy of the teacher's denoiser in train mode with gradients on."""
    return copy.deepcopy(denoiser).float().train().requires_grad_(True)


def _randn_like(x: Tensor, ctx: StepContext) -> Tensor:
    """Standard normal noise shaped like x (B, ...), from the step's generator."""
    return torch.randn(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
