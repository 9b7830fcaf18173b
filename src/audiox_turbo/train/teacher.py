"""Teacher training task: rectified flow (t=1 noise, t=0 data, v = ε − x0) on codec latents.

Batches come from `ClipDataset`/`ShardDataset` (waveforms, encoded here by the frozen codec)
or from `LatentShardDataset` (pre-encoded `latents`, cached text/video features); their
`conditions` (`data.dataset.condition_inputs`) get the audio prompt here. The loss is the
velocity MSE averaged over valid (non-padded) latent frames; condition dropout uses
`Conditioner(drop=True)`. Validation samples run `model.generation.sample_latents`, the path
of `generate`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiox_turbo.codec.build import Codec, build_codec
from audiox_turbo.conditioning.conditioner import Conditioner
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.config import ModelConfig
from audiox_turbo.data.dataset import frame_mask
from audiox_turbo.flow.path import interpolate, length_shift, sample_timesteps, velocity_target
from audiox_turbo.flow.sampling import SamplerSettings
from audiox_turbo.model.denoiser import Denoiser
from audiox_turbo.model.flow_model import FlowModel
from audiox_turbo.model.generation import sample_latents
from audiox_turbo.model_dir import NATIVE_COMPONENTS, save_model_dir
from audiox_turbo.train.run_config import TeacherTrainingConfig, TrainConfig
from audiox_turbo.train.task import AudioSample, OptimizerSpec, StepContext, Task

VALIDATION_SEED = 0
"""Seed of the validation samples: what `generate --seed 0` makes with the same weights."""


def prompt_keep(prompt_mask: torch.Tensor, downsampling: int, frames: int) -> torch.Tensor:
    """Prompt mask (B, S) bool -> frame keep (B, 1, T) float: 1 where a whole frame is given."""
    b, s = prompt_mask.shape
    padded = torch.zeros(b, frames * downsampling, dtype=torch.bool, device=prompt_mask.device)
    padded[:, : min(s, frames * downsampling)] = prompt_mask[:, : frames * downsampling]
    return padded.view(b, frames, downsampling).all(-1).unsqueeze(1).float()


@dataclass
class TeacherBatch:
    """Clean latents x0 (B, D, T), frame mask (B, T) bool, conditioner inputs, duration (s)."""

    x0: torch.Tensor
    mask: torch.Tensor
    inputs: ConditionInputs
    duration: float


class TeacherTask(Task):
    """Trains conditioner + denoiser with the rectified-flow loss; the codec stays frozen."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        settings: TeacherTrainingConfig,
        codec: Codec | None = None,
        conditioner: Conditioner | None = None,
        denoiser: Denoiser | None = None,
        validation_batch: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.model_config = model_config
        self.train_config = train_config
        self.settings = settings
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.codec = codec if codec is not None else build_codec(model_config.codec)
            conditioner = conditioner if conditioner is not None else Conditioner(model_config)
            denoiser = denoiser if denoiser is not None else Denoiser(model_config)
        self.codec.eval().requires_grad_(False)
        self.flow = FlowModel(conditioner, denoiser)
        self.validation_batch = validation_batch

    def modules(self) -> dict[str, nn.Module]:
        return {"flow": self.flow, "codec": self.codec}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return {"flow": OptimizerSpec(("flow",))}

    def ema_modules(self) -> list[str]:
        return ["flow"]

    def batch_stats(self, batch: dict[str, Any]) -> tuple[int, int]:
        if "latents" in batch:
            return batch["latents"].shape[0], int(batch["latent_mask"].sum())
        frames = frame_mask(
            batch["audio_mask"].sum(-1),
            self.model_config.codec.downsampling,
            self.model_config.codec.latent_frames(batch["audio"].shape[-1]),
        )
        return batch["audio"].shape[0], int(frames.sum())

    def latents_and_inputs(self, batch: dict[str, Any], ctx: StepContext) -> TeacherBatch:
        """Clean latents, frame mask and the conditioner inputs (audio prompt included)."""
        codec_cfg = self.model_config.codec
        device = ctx.device
        if "latents" in batch:
            x0 = batch["latents"].to(device)
            mask = batch["latent_mask"].to(device)
            keep = batch["prompt_mask"].to(device)[:, None, :].float()
        else:
            wav = batch["audio"].to(device)
            frames = codec_cfg.latent_frames(wav.shape[-1])
            with torch.no_grad():
                x0 = ctx.modules["codec"].encode(wav, sample=True, generator=ctx.generator)
            mask = frame_mask(batch["audio_mask"].sum(-1), codec_cfg.downsampling, frames)
            mask = mask.to(device)
            keep = prompt_keep(batch["prompt_mask"].to(device), codec_cfg.downsampling, frames)
        x0 = x0.float()
        inputs = batch["conditions"].to(device)
        inputs = inputs.with_audio_prompt(x0 * keep, keep, batch["audio_prompt_present"].to(device))
        return TeacherBatch(x0, mask, inputs, x0.shape[-1] / codec_cfg.latent_rate)

    def training_step(
        self, batch: dict[str, Any], phase: str, ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        b = self.latents_and_inputs(batch, ctx)
        shift = length_shift(b.x0.shape[-1]) if self.settings.length_shift else None
        t = sample_timesteps(
            b.x0.shape[0],
            self.train_config.timestep_sampler,
            shift if shift is not None else self.train_config.timestep_shift,
            generator=ctx.generator,
            device=ctx.device,
        )
        eps = torch.randn(b.x0.shape, generator=ctx.generator, device=ctx.device, dtype=b.x0.dtype)
        x_t = interpolate(b.x0, eps, t)
        v = ctx.modules["flow"](x_t, t, b.inputs, b.duration, b.mask, True, ctx.generator)
        return {"loss": masked_mse(v.float(), velocity_target(b.x0, eps), b.mask)}

    def validate(self, ctx: StepContext) -> dict[str, float]:
        """Flow loss on the fixed validation batch at fixed t and noise (no dropout)."""
        if self.validation_batch is None:
            return {}
        flow: FlowModel = ctx.unwrapped("flow")
        g = torch.Generator(device=ctx.device).manual_seed(1234)
        b = self.latents_and_inputs(self.validation_batch, dataclasses.replace(ctx, generator=g))
        losses = []
        for t_value in (0.1, 0.3, 0.5, 0.7, 0.9):
            t = torch.full((b.x0.shape[0],), t_value, device=ctx.device)
            eps = torch.randn(b.x0.shape, generator=g, device=ctx.device)
            v = flow(interpolate(b.x0, eps, t), t, b.inputs, b.duration, b.mask)
            losses.append(masked_mse(v.float(), velocity_target(b.x0, eps), b.mask))
        return {"flow_loss": float(torch.stack(losses).mean())}

    def samples(self, ctx: StepContext) -> list[AudioSample]:
        """The fixed prompts as `generate` makes them (seed 0, Euler + CFG), EMA weights."""
        s = self.settings
        prompts = list(s.validation_prompts)
        if not prompts:
            return []
        flow: FlowModel = ctx.unwrapped("flow")
        duration = s.validation_seconds
        frames = self.model_config.latent_frames(duration)
        cond = flow.condition(ConditionInputs(len(prompts), text=prompts), frames, duration)
        settings = SamplerSettings(
            "euler", s.validation_steps, s.validation_cfg, self.model_config.sampler.shift
        )
        latents, _ = sample_latents(
            flow.denoiser, flow.conditioner, cond, settings, VALIDATION_SEED, duration
        )
        audio = ctx.modules["codec"].decode(latents.float()).clamp(-1, 1)
        audio = audio[..., : self.model_config.num_samples(duration)]
        rate = self.model_config.codec.sample_rate
        return [AudioSample(f"prompt{i}", audio[i], rate) for i in range(len(prompts))]

    def export(self, directory: Path, ctx: StepContext) -> None:
        """A model folder (`generate` loads it) with the EMA conditioner and denoiser."""
        flow: FlowModel = ctx.unwrapped("flow")
        config = dataclasses.replace(self.model_config, trained=True)
        modules = (self.codec, flow.conditioner, flow.denoiser)
        save_model_dir(directory, config, dict(zip(NATIVE_COMPONENTS, modules, strict=True)))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valid frames: pred/target (B, D, T), mask (B, T) bool -> scalar."""
    weight = mask[:, None, :].to(pred.dtype)
    denom = (weight.sum() * pred.shape[1]).clamp_min(1.0)
    return ((pred - target) ** 2 * weight).sum() / denom
