"""One guidance path: every sampler (generate, teacher and student validation, the DMD real
score) applies CFG as v_uncond + w·(v_cond − v_uncond) against the learned nulls, checked
against a float64 reference built from separate conditional and unconditional forwards, so a
swap of the two halves anywhere fails here."""

from __future__ import annotations

import itertools

import torch

from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.data.dataset import collate
from audiox_turbo.flow.sampling import SamplerSettings, teacher_timesteps
from audiox_turbo.model.generation import conditioned_velocity, seeded_noise
from audiox_turbo.pipeline import AudioXTurbo
from audiox_turbo.train.run_config import DistillConfig, TeacherTrainingConfig, TrainConfig
from audiox_turbo.train.student import DistillTask
from audiox_turbo.train.teacher import VALIDATION_SEED, TeacherTask
from audiox_turbo.train.trainer import Trainer
from conftest import randomize_

DURATION = 0.5
CFG = 3.0
PROMPTS = ["a dog barks", "rain on a roof"]


def tiny_model() -> AudioXTurbo:
    """The tiny preset with non-zero denoiser weights (zero-init heads would hide CFG)."""
    model = AudioXTurbo.from_preset("tiny")
    randomize_(model.denoiser, seed=1, std=0.05)
    return model


def reference_cfg(model: AudioXTurbo, cond, x: torch.Tensor, t: torch.Tensor, mask=None):
    """v_u + w·(v_c − v_u) in float64 from two separate forwards (uncond = learned nulls)."""
    frames = x.shape[-1]
    uncond = model.conditioner.unconditional(x.shape[0], frames, DURATION)
    v_c = model.denoiser(x, t, cond, x_mask=mask).double()
    v_u = model.denoiser(x, t, uncond, x_mask=mask).double()
    return v_u + CFG * (v_c - v_u), v_c + CFG * (v_u - v_c)


def assert_matches_not_swapped(v: torch.Tensor, expected: torch.Tensor, swapped: torch.Tensor):
    torch.testing.assert_close(v.double(), expected, atol=1e-5, rtol=1e-4)
    assert (v.double() - swapped).abs().max() > 100 * (v.double() - expected).abs().max()


@torch.no_grad()
def test_conditioned_velocity_is_reference_cfg_against_learned_nulls() -> None:
    model = tiny_model()
    frames = model.config.latent_frames(DURATION)
    cond = model.conditioner(ConditionInputs(2, text=PROMPTS), frames, DURATION)
    x = torch.randn(
        2, model.config.codec.latent_dim, frames, generator=torch.Generator().manual_seed(0)
    )
    t = torch.tensor([0.3, 0.8])
    v = conditioned_velocity(model.denoiser, model.conditioner, cond, CFG, DURATION)(x, t)
    assert_matches_not_swapped(v, *reference_cfg(model, cond, x, t))
    plain = conditioned_velocity(model.denoiser, model.conditioner, cond, 1.0, DURATION)(x, t)
    torch.testing.assert_close(plain, model.denoiser(x, t, cond))


@torch.no_grad()
def test_generate_is_euler_on_the_reference_cfg() -> None:
    model = tiny_model()
    out = model(text=PROMPTS, duration=DURATION, steps=3, cfg=CFG, seed=7, method="euler")
    frames = model.config.latent_frames(DURATION)
    cond = model.conditioner(ConditionInputs(2, text=PROMPTS), frames, DURATION)
    x = seeded_noise((2, model.config.codec.latent_dim, frames), 7, torch.device("cpu"))
    x_swapped = x.clone()
    grid = teacher_timesteps(3, model.config.sampler.shift)
    for t, t_next in itertools.pairwise(grid):
        tt = torch.full((2,), float(t))
        v, _ = reference_cfg(model, cond, x, tt)
        _, v_swapped = reference_cfg(model, cond, x_swapped, tt)
        x = x + float(t_next - t) * v.float()
        x_swapped = x_swapped + float(t_next - t) * v_swapped.float()
    expected = model.decode(x)[..., : model.config.num_samples(DURATION)].clamp(-1, 1)
    swapped = model.decode(x_swapped)[..., : model.config.num_samples(DURATION)].clamp(-1, 1)
    torch.testing.assert_close(out.waveforms, expected, atol=1e-4, rtol=1e-3)
    assert not torch.allclose(out.waveforms, swapped, atol=1e-3)
    assert out.nfe == 6


def trainer_for(task, tmp_path, dataset) -> Trainer:
    cfg = TrainConfig(batch_size=2, max_steps=0, log_every=0, sample_every=0, num_workers=0)
    return Trainer(task, cfg, tmp_path, dataset, collate, progress=False, cpu=True)


class Clips(torch.utils.data.Dataset):
    """Two captioned latent clips (LatentShardDataset-style samples)."""

    def __init__(self, latent_dim: int, frames: int) -> None:
        self.latents = torch.randn(
            2, latent_dim, frames, generator=torch.Generator().manual_seed(3)
        )

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict:
        frames = self.latents.shape[-1]
        return {
            "latents": self.latents[i],
            "latent_mask": torch.arange(frames) < frames - i,
            "prompt_mask": torch.zeros(frames, dtype=torch.bool),
            "text": PROMPTS[i],
            "text_present": True,
            "audio_prompt_present": False,
        }


@torch.no_grad()
def test_teacher_validation_samples_are_what_generate_makes(tmp_path) -> None:
    model = tiny_model()
    settings = TeacherTrainingConfig(
        validation_prompts=tuple(PROMPTS),
        validation_seconds=DURATION,
        validation_steps=3,
        validation_cfg=CFG,
    )
    task = TeacherTask(
        model.config, TrainConfig(), settings, model.codec, model.conditioner, model.denoiser
    )
    frames = model.config.latent_frames(DURATION)
    ctx = trainer_for(task, tmp_path, Clips(model.config.codec.latent_dim, frames)).context()
    clips = task.samples(ctx)
    out = model(
        text=PROMPTS, duration=DURATION, steps=3, cfg=CFG, seed=VALIDATION_SEED, method="euler"
    )
    for i, clip in enumerate(clips):
        torch.testing.assert_close(clip.audio, out.waveforms[i], atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_student_validation_samples_are_what_generate_makes(tmp_path) -> None:
    model = tiny_model()
    task = DistillTask(
        model,
        TrainConfig(),
        DistillConfig(),
        validation_prompts=PROMPTS,
        validation_seconds=DURATION,
    )
    frames = model.config.latent_frames(DURATION)
    ctx = trainer_for(task, tmp_path, Clips(model.config.codec.latent_dim, frames)).context()
    clips = task.samples(ctx)
    last = [c for c in clips if c.name.endswith(f"_step{len(task.timesteps)}")]
    settings = SamplerSettings("student", len(task.timesteps), 1.0, task.shift)
    out = model(
        text=PROMPTS,
        duration=DURATION,
        steps=settings.steps,
        shift=settings.shift,
        seed=VALIDATION_SEED,
        method="student",
    )
    assert len(last) == len(PROMPTS)
    for i, clip in enumerate(last):
        torch.testing.assert_close(clip.audio, out.waveforms[i], atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_dmd_real_score_is_reference_cfg(tmp_path) -> None:
    model = tiny_model()
    task = DistillTask(model, TrainConfig(), DistillConfig(teacher_cfg=CFG))
    frames = model.config.latent_frames(DURATION)
    dataset = Clips(model.config.codec.latent_dim, frames)
    ctx = trainer_for(task, tmp_path, dataset).context()
    b = task.prepare(collate([dataset[0], dataset[1]]), ctx)
    x = torch.randn(b.x0.shape, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([0.2, 0.9])
    v = task.teacher_velocity(b, ctx)(x, t)
    uncond = model.conditioner.unconditional(2, frames, b.duration)
    v_c = model.denoiser(x, t, b.cond, x_mask=b.mask).double()
    v_u = model.denoiser(x, t, uncond, x_mask=b.mask).double()
    assert_matches_not_swapped(v, v_u + CFG * (v_c - v_u), v_c + CFG * (v_u - v_c))
