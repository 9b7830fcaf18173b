"""Teacher training task: rectified flow (t=1 noise, t=0 data, v = ε − x0) on codec latents.

Batches come from `ClipDataset`/`ShardDataset` (waveforms, encoded here by the frozen codec)
or from `LatentShardDataset` (pre-encoded `latents`, and `video_features` cached from a frozen
frame encoder, used instead of frames; a trainable `cnn` encoder refuses them). The loss is
the velocity MSE averaged over valid (non-padded) latent frames; condition dropout uses
`Conditioner(drop=True)`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiox_turbo.codec.oobleck import OobleckVAE
from audiox_turbo.conditioning.conditioner import Conditioner, Conditions
from audiox_turbo.config import ModelConfig
from audiox_turbo.data.dataset import frame_mask
from audiox_turbo.errors import AudioXError
from audiox_turbo.flow.path import interpolate, length_shift, sample_timesteps, velocity_target
from audiox_turbo.flow.sampling import classifier_free_guidance, sample_euler, teacher_timesteps
from audiox_turbo.model.denoiser import Denoiser
from audiox_turbo.train.loop import AudioSample, OptimizerSpec, StepContext, Task
from audiox_turbo.train.run_config import TeacherTrainingConfig, TrainConfig


class FlowModel(nn.Module):
    """Conditioner + denoiser behind one forward (what DDP synchronises)."""

    def __init__(self, conditioner: Conditioner, denoiser: Denoiser) -> None:
        super().__init__()
        self.conditioner = conditioner
        self.denoiser = denoiser

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        inputs: dict[str, Any],
        drop: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Velocity (B, D, T) for x_t (B, D, T) at t (B,); `inputs` from `latents_and_inputs`."""
        cond = self.condition(x_t.shape[0], x_t.shape[-1], inputs, drop, generator)
        return self.denoiser(x_t, t, cond, x_mask=inputs.get("x_mask"))

    def condition(
        self,
        batch_size: int,
        frames: int,
        inputs: dict[str, Any],
        drop: bool = False,
        generator: torch.Generator | None = None,
    ) -> Conditions:
        """Conditions for the batch (condition dropout when `drop`)."""
        return self.conditioner(
            batch_size,
            frames,
            inputs["duration"],
            text=inputs.get("text"),
            video=inputs.get("video"),
            video_present=inputs.get("video_present"),
            video_features=inputs.get("video_features"),
            text_features=inputs.get("text_features"),
            video_mask=inputs.get("video_mask"),
            audio_latents=inputs.get("audio_latents"),
            audio_keep=inputs.get("audio_keep"),
            audio_present=inputs.get("audio_present"),
            drop=drop,
            generator=generator,
        )


def prompt_keep(prompt_mask: torch.Tensor, downsampling: int, frames: int) -> torch.Tensor:
    """Prompt mask (B, S) bool -> frame keep (B, 1, T) float: 1 where a whole frame is given."""
    b, s = prompt_mask.shape
    padded = torch.zeros(b, frames * downsampling, dtype=torch.bool, device=prompt_mask.device)
    padded[:, : min(s, frames * downsampling)] = prompt_mask[:, : frames * downsampling]
    return padded.view(b, frames, downsampling).all(-1).unsqueeze(1).float()


class TeacherTask(Task):
    """Trains conditioner + denoiser with the rectified-flow loss; the codec stays frozen."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        settings: TeacherTrainingConfig,
        codec: OobleckVAE | None = None,
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
            self.codec = codec if codec is not None else OobleckVAE(model_config.codec)
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

    def latents_and_inputs(
        self, batch: dict[str, Any], ctx: StepContext
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Clean latents x0 (B, D, T), frame mask (B, T) bool and the conditioner inputs."""
        codec_cfg = self.model_config.codec
        device = ctx.device
        if "latents" in batch:
            x0 = batch["latents"].to(device)
            mask = batch["latent_mask"].to(device)
            frames = x0.shape[-1]
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
        present = batch["text_present"].tolist()
        inputs: dict[str, Any] = {
            "duration": frames / codec_cfg.latent_rate,
            "text": [t if p else None for t, p in zip(batch["text"], present, strict=True)],
            "audio_latents": x0 * keep,
            "audio_keep": keep,
            "audio_present": batch["audio_prompt_present"].to(device),
            "x_mask": mask,
        }
        if "text_features" in batch:
            self._check_cached_text()
            mask = batch.get("text_feature_mask")
            states = batch["text_features"].to(device)
            if mask is None:
                mask = torch.ones(states.shape[:2], dtype=torch.bool)
            inputs["text_features"] = (states, mask.to(device))
        if "video" in batch:
            inputs["video"] = batch["video"].to(device)
            inputs["video_present"] = batch["video_present"].to(device)
            if "video_mask" in batch:
                inputs["video_mask"] = batch["video_mask"].to(device)
        elif "video_features" in batch:
            self._check_cached_video()
            inputs["video_features"] = batch["video_features"].to(device)
            inputs["video_present"] = batch["video_present"].to(device)
            if "video_feature_mask" in batch:
                inputs["video_mask"] = batch["video_feature_mask"].to(device)
        return x0, mask, inputs

    def _check_cached_text(self) -> None:
        """Cached caption features skip the text encoder: refuse them for a trainable one."""
        if not self.flow.conditioner.text.frozen_encoder:
            raise AudioXError(
                "the latent shards carry cached text features, but the 'bytes' text encoder is "
                "trainable and would be bypassed; use a frozen encoder (minilm, t5) or shards "
                "without --text"
            )

    def _check_cached_video(self) -> None:
        """Cached video features skip the frame encoder: refuse them for a trainable one."""
        if not self.flow.conditioner.video.frozen_encoder:
            encoder = self.model_config.conditioning.video_encoder
            raise AudioXError(
                f"the latent shards carry cached video features, but video encoder {encoder!r} "
                "is trainable and would be bypassed; use a frozen encoder (video_encoder "
                "'clip') or train from a manifest / media shards with video frames"
            )

    def training_step(
        self, batch: dict[str, Any], phase: str, ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        x0, mask, inputs = self.latents_and_inputs(batch, ctx)
        shift = length_shift(x0.shape[-1]) if self.settings.length_shift else None
        t = sample_timesteps(
            x0.shape[0],
            self.train_config.timestep_sampler,
            shift if shift is not None else self.train_config.timestep_shift,
            generator=ctx.generator,
            device=ctx.device,
        )
        eps = torch.randn(x0.shape, generator=ctx.generator, device=ctx.device, dtype=x0.dtype)
        v = ctx.modules["flow"](interpolate(x0, eps, t), t, inputs, True, ctx.generator)
        loss = masked_mse(v.float(), velocity_target(x0, eps), mask)
        return {"loss": loss}

    def validate(self, ctx: StepContext) -> dict[str, float]:
        """Flow loss on the fixed validation batch at fixed t and noise (no dropout)."""
        if self.validation_batch is None:
            return {}
        flow: FlowModel = ctx.unwrapped("flow")
        g = torch.Generator(device=ctx.device).manual_seed(1234)
        sub = dataclasses.replace(ctx, generator=g)
        x0, mask, inputs = self.latents_and_inputs(self.validation_batch, sub)
        losses = []
        for t_value in (0.1, 0.3, 0.5, 0.7, 0.9):
            t = torch.full((x0.shape[0],), t_value, device=ctx.device)
            eps = torch.randn(x0.shape, generator=g, device=ctx.device)
            v = flow(interpolate(x0, eps, t), t, inputs)
            losses.append(masked_mse(v.float(), velocity_target(x0, eps), mask))
        return {"flow_loss": float(torch.stack(losses).mean())}

    def samples(self, ctx: StepContext) -> list[AudioSample]:
        """Generate the fixed prompt set (fixed seed, Euler + CFG) and decode it."""
        s = self.settings
        prompts = list(s.validation_prompts)
        if not prompts:
            return []
        flow: FlowModel = ctx.unwrapped("flow")
        codec_cfg = self.model_config.codec
        frames = self.model_config.latent_frames(s.validation_seconds)
        inputs = {"duration": frames / codec_cfg.latent_rate, "text": prompts}
        cond = flow.condition(len(prompts), frames, inputs)
        uncond = flow.condition(len(prompts), frames, {"duration": inputs["duration"]})

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            v_cond = flow.denoiser(x, t, cond)
            if s.validation_cfg == 1.0:
                return v_cond
            return classifier_free_guidance(v_cond, flow.denoiser(x, t, uncond), s.validation_cfg)

        g = torch.Generator(device=ctx.device).manual_seed(0)
        noise = torch.randn(
            len(prompts), codec_cfg.latent_dim, frames, generator=g, device=ctx.device
        )
        latents = sample_euler(
            velocity, noise, teacher_timesteps(s.validation_steps, self.model_config.sampler.shift)
        )
        audio = ctx.modules["codec"].decode(latents).clamp(-1, 1)
        return [
            AudioSample(f"prompt{i}", audio[i], codec_cfg.sample_rate) for i in range(len(prompts))
        ]

    def export(self, directory: Path, ctx: StepContext) -> None:
        """A model folder (`generate` loads it) with the EMA conditioner and denoiser."""
        from audiox_turbo.pipeline import AudioXTurbo

        flow: FlowModel = ctx.unwrapped("flow")
        config = dataclasses.replace(self.model_config, trained=True)
        AudioXTurbo(config, self.codec, flow.conditioner, flow.denoiser).save_pretrained(directory)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valid frames: pred/target (B, D, T), mask (B, T) bool -> scalar."""
    weight = mask[:, None, :].to(pred.dtype)
    denom = (weight.sum() * pred.shape[1]).clamp_min(1.0)
    return ((pred - target) ** 2 * weight).sum() / denom
