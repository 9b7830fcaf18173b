"""Codec training task: VAE reconstruction (multi-resolution STFT, L1, optional log-mel) + KL,
then a multi-scale STFT adversary, for the Oobleck and iSTFT codecs; and the mel codec's one
"training" step, its band statistics (`fit_mel_codec`)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiox_turbo.codec.bottleneck import kl_divergence
from audiox_turbo.codec.build import Codec, build_codec
from audiox_turbo.codec.mel import LogMelCodec
from audiox_turbo.config import ModelConfig
from audiox_turbo.distill.discriminator import gan_discriminator_loss, gan_generator_loss
from audiox_turbo.model_dir import native_components, save_model_dir
from audiox_turbo.train.codec_discriminator import MultiScaleSTFTDiscriminator
from audiox_turbo.train.losses import (
    feature_matching_loss,
    mel_distance,
    multi_resolution_stft_loss,
    si_sdr,
    waveform_l1,
)
from audiox_turbo.train.run_config import CodecTrainingConfig
from audiox_turbo.train.task import AudioSample, OptimizerSpec, StepContext, Task


class VAEReconstruction(nn.Module):
    """Wraps the VAE so one forward (what DDP synchronises) encodes, samples and decodes.

    With `decode_means` the decoder gets the posterior means, as it does at inference: the
    latent cache holds means, so the denoiser learns (and generates) means; sampling around
    them only trains the decoder on noisier latents than it will ever see.
    """

    def __init__(self, vae: Codec, decode_means: bool = False) -> None:
        super().__init__()
        self.vae = vae
        self.decode_means = decode_means

    def forward(
        self, wav: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, S) -> reconstruction (B, C, S), posterior mean and std (B, D, T) (the VAE's
        own space: `latent_scale` is applied only between the codec and the denoiser)."""
        mean, std = self.vae.encode_posterior(wav)
        if self.decode_means:
            return self.vae.decoder(mean)[..., : wav.shape[-1]], mean, std
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        recon = self.vae.decoder(mean + std * noise)
        return recon[..., : wav.shape[-1]], mean, std


class CodecTask(Task):
    """Trains the config's codec; the discriminator joins at `adversarial_start`."""

    def __init__(
        self,
        model_config: ModelConfig,
        settings: CodecTrainingConfig,
        validation_batch: dict[str, Any] | None = None,
        vae: Codec | None = None,
        seed: int = 0,
    ) -> None:
        self.model_config = model_config
        self.settings = settings
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vae = vae if vae is not None else build_codec(model_config.codec)
            self.discriminator = MultiScaleSTFTDiscriminator(
                model_config.codec.audio_channels,
                settings.discriminator_filters,
                settings.discriminator_fft_sizes,
            )
        self.reconstruction = VAEReconstruction(self.vae, decode_means=settings.freeze_encoder)
        self.validation_batch = validation_batch
        if settings.freeze_encoder:
            self.vae.encoder.requires_grad_(False)

    def modules(self) -> dict[str, nn.Module]:
        return {"codec": self.reconstruction, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        s = self.settings
        return {
            "codec": OptimizerSpec(("codec",), betas=s.betas),
            "discriminator": OptimizerSpec(
                ("discriminator",), lr=s.discriminator_lr, betas=s.betas
            ),
        }

    def phases(self, step: int) -> list[str]:
        if step < self.settings.adversarial_start:
            return ["codec"]
        return ["discriminator", "codec"]

    def ema_modules(self) -> list[str]:
        return ["codec"]

    def batch_stats(self, batch: dict[str, Any]) -> tuple[int, int]:
        audio = batch["audio"]
        return audio.shape[0], audio.shape[0] * self.model_config.codec.latent_frames(
            audio.shape[-1]
        )

    def training_step(
        self, batch: dict[str, Any], phase: str, ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        s = self.settings
        wav = batch["audio"].to(ctx.device)
        mask = batch["audio_mask"].to(ctx.device)[:, None, :].to(wav.dtype)
        codec, disc = ctx.modules["codec"], ctx.modules["discriminator"]
        if phase == "discriminator":
            with torch.no_grad():
                recon, _, _ = codec(wav, ctx.generator)
            # one forward over real and fake: DDP allows a single forward per backward
            logits, _ = disc(torch.cat([wav, (recon * mask).detach()]))
            real_logits = [x[: len(wav)] for x in logits]
            fake_logits = [x[len(wav) :] for x in logits]
            per_scale = [
                gan_discriminator_loss(r.float(), f.float(), "hinge")
                for r, f in zip(real_logits, fake_logits, strict=True)
            ]
            return {"loss": torch.stack(per_scale).sum()}
        recon, mean, std = codec(wav, ctx.generator)
        recon = recon * mask
        stft = multi_resolution_stft_loss(recon, wav, s.stft_fft_sizes, eps=s.stft_log_eps)
        l1 = waveform_l1(recon, wav)
        kl = kl_divergence(mean.float(), std.float())
        loss = s.stft_weight * stft + s.l1_weight * l1 + s.kl_weight * kl
        losses = {"stft": stft.detach(), "l1": l1.detach(), "kl": kl.detach()}
        if s.mel_weight > 0:
            mel = mel_distance(recon, wav, self.model_config.codec.sample_rate)
            loss = loss + s.mel_weight * mel
            losses["mel"] = mel.detach()
        if ctx.step >= s.adversarial_start:
            with torch.no_grad():
                _, real_features = disc(wav)
            fake_logits, fake_features = disc(recon)
            adversarial = torch.stack(
                [gan_generator_loss(f.float(), "hinge") for f in fake_logits]
            ).sum()
            matching = feature_matching_loss(real_features, fake_features)
            loss = loss + s.adversarial_weight * adversarial + s.feature_matching_weight * matching
            losses.update(adversarial=adversarial.detach(), feature_matching=matching.detach())
        losses["loss"] = loss
        return losses

    def validate(self, ctx: StepContext) -> dict[str, float]:
        if self.validation_batch is None:
            return {}
        wav, recon = self._reconstruct(ctx)
        return {
            "si_sdr": float(si_sdr(recon, wav).mean()),
            "mel_distance": float(mel_distance(recon, wav, self.model_config.codec.sample_rate)),
        }

    def samples(self, ctx: StepContext) -> list[AudioSample]:
        if self.validation_batch is None:
            return []
        wav, recon = self._reconstruct(ctx)
        rate = self.model_config.codec.sample_rate
        clips = []
        for i in range(min(len(wav), self.settings.validation_clips)):
            clips.append(AudioSample(f"clip{i}_real", wav[i], rate))
            clips.append(AudioSample(f"clip{i}_recon", recon[i], rate))
        return clips

    def _reconstruct(self, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.validation_batch is not None
        wav = self.validation_batch["audio"][: self.settings.validation_clips].to(ctx.device)
        vae = ctx.unwrapped("codec").vae
        recon = vae.decode(vae.encode(wav, sample=False))[..., : wav.shape[-1]]
        return wav, recon

    def export(self, directory: Path, ctx: StepContext) -> None:
        """A model folder with the trained codec and freshly initialised other components; the
        codec's `latent_scale` is measured on the validation batch (see `latent_scale`)."""
        vae = ctx.unwrapped("codec").vae
        codec_config = self.model_config.codec
        batch = None if self.settings.freeze_encoder else self.validation_batch
        if self.settings.normalise_latents and batch is not None:
            scale = latent_scale(vae, batch["audio"].to(ctx.device))
            codec_config = dataclasses.replace(codec_config, latent_scale=scale)
        config = dataclasses.replace(self.model_config, codec=codec_config, trained=False)
        components = native_components(config)
        components["codec"].load_state_dict(vae.state_dict())
        save_model_dir(directory, config, components)


@torch.no_grad()
def fit_mel_codec(
    model_config: ModelConfig, dataset: Any, collate: Any, clips: int, directory: Path
) -> LogMelCodec:
    """Measure a mel codec's band statistics on up to `clips` items of `dataset`, spread evenly
    over it, and export a model folder with it (`latent_scale` 1: the bands are standardised)."""
    if clips < 1:
        raise ValueError(f"statistics_clips: must be >= 1, got {clips}")
    if len(dataset) == 0:
        raise ValueError("no training clips to measure the mel band statistics on")
    codec_config = dataclasses.replace(model_config.codec, latent_scale=1.0)
    codec = LogMelCodec(codec_config)
    count = min(clips, len(dataset))
    items = [dataset[i * len(dataset) // count] for i in range(count)]
    batch = collate(items)
    codec.fit_band_statistics(batch["audio"], batch["audio_mask"])
    config = dataclasses.replace(model_config, codec=codec_config, trained=False)
    components = native_components(config)
    components["codec"] = codec
    save_model_dir(directory, config, components)
    return codec


@torch.no_grad()
def latent_scale(vae: Codec, wav: torch.Tensor) -> float:
    """1 / RMS of the posterior means of `wav` (B, C, S): the multiplier that gives the
    denoiser unit-scale latents, as the standard normal its flow starts from."""
    mean, _ = vae.encode_posterior(wav)
    rms = mean.float().pow(2).mean().sqrt().item()
    if not math.isfinite(rms) or rms <= 0:
        raise ValueError(f"cannot normalise latents: their RMS is {rms}")
    return 1.0 / rms
