"""The Conditioner: text + video + audio prompt -> MAF -> `Conditions` for the denoiser."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from audiox_turbo.conditioning.audio import AudioPromptConditioner
from audiox_turbo.conditioning.fusion import MultimodalAdaptiveFusion
from audiox_turbo.conditioning.text import TextConditioner
from audiox_turbo.conditioning.tokens import ModalityTokens
from audiox_turbo.conditioning.video import VideoConditioner
from audiox_turbo.config import ModelConfig


@dataclass
class Conditions:
    """Everything the denoiser is conditioned on, for a batch of B samples.

    text (B, text_max_tokens, dim); video (B, Nv, dim), one token per frame; audio (B, T, dim),
    one token per latent frame; pooled (B, dim) from MAF; prompt (B, latent_dim + 1, T) =
    cat[audio-prompt latents * keep, keep], zeros when absent.
    """

    text: ModalityTokens
    video: ModalityTokens
    audio: ModalityTokens
    pooled: torch.Tensor
    prompt: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.pooled.shape[0]

    @staticmethod
    def cat(items: list[Conditions]) -> Conditions:
        """Concatenate along the batch (e.g. cond + uncond for batched CFG)."""
        return Conditions(
            ModalityTokens.cat_batch([c.text for c in items]),
            ModalityTokens.cat_batch([c.video for c in items]),
            ModalityTokens.cat_batch([c.audio for c in items]),
            torch.cat([c.pooled for c in items]),
            torch.cat([c.prompt for c in items]),
        )

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Conditions:
        """Move to a device; floating tensors optionally cast to `dtype` (masks stay bool)."""
        return Conditions(
            self.text.to(device, dtype),
            self.video.to(device, dtype),
            self.audio.to(device, dtype),
            self.pooled.to(device=device, dtype=dtype or self.pooled.dtype),
            self.prompt.to(device=device, dtype=dtype or self.prompt.dtype),
        )

    def repeat(self, n: int) -> Conditions:
        """Each sample repeated n times in place (repeat_interleave): batch B -> B * n."""

        def tokens(m: ModalityTokens) -> ModalityTokens:
            return ModalityTokens(
                m.tokens.repeat_interleave(n, 0),
                m.mask.repeat_interleave(n, 0),
                m.present.repeat_interleave(n, 0),
            )

        return Conditions(
            tokens(self.text),
            tokens(self.video),
            tokens(self.audio),
            self.pooled.repeat_interleave(n, 0),
            self.prompt.repeat_interleave(n, 0),
        )


def condition_dropout(
    batch_size: int,
    probabilities: tuple[float, float, float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Keep flags (3, B) bool for (text, video, audio): each False with its probability."""
    device = generator.device if generator is not None else torch.device("cpu")
    draws = torch.rand(3, batch_size, generator=generator, device=device)
    return draws >= torch.tensor(probabilities, device=device)[:, None]


class Conditioner(nn.Module):
    """Text, video and audio-prompt conditioners followed by Multimodal Adaptive Fusion."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cond = config.conditioning
        self.text = TextConditioner(cond)
        self.video = VideoConditioner(cond)
        self.audio = AudioPromptConditioner(
            config.codec.latent_dim, cond.dim, cond.heads, cond.audio_prompt_layers
        )
        self.fusion = MultimodalAdaptiveFusion(
            cond.dim, cond.heads, cond.fusion_experts, cond.fusion_layers
        )

    def forward(
        self,
        batch_size: int,
        frames: int,
        duration: float,
        text: list[str | None] | None = None,
        video: torch.Tensor | None = None,
        video_present: torch.Tensor | None = None,
        audio_latents: torch.Tensor | None = None,
        audio_keep: torch.Tensor | None = None,
        audio_present: torch.Tensor | None = None,
        drop: bool = False,
        generator: torch.Generator | None = None,
        video_features: torch.Tensor | None = None,
        text_features: tuple[torch.Tensor, torch.Tensor] | None = None,
        audio_reference: torch.Tensor | None = None,
        video_mask: torch.Tensor | None = None,
    ) -> Conditions:
        """Conditions for B samples of `frames` latent frames (`duration` seconds).

        video: uint8 (B, Nv, 3, H, W) with Nv = config.video_frames(duration), or instead
        video_features (B, Nv, video_feature_dim), cached outputs of a frozen frame encoder
        (they skip it; see `VideoConditioner`); video_mask (B, Nv) bool marks real (not padded)
        frames; text_features (states (B, L, text_feature_dim),
        mask (B, L)) likewise cached from a frozen text encoder for the B prompts; audio_latents
        (B, latent_dim, T=frames) with audio_keep (B, 1, T) and audio_reference (B,) bool (default:
        no keep = reference; see `AudioPromptConditioner`).
        drop=True drops each modality per sample with config.denoiser.*_dropout (train time).
        """
        device = self.text.null.device
        keep_text = keep_video = keep_audio = None
        if drop:
            d = self.config.denoiser
            probabilities = (d.text_dropout, d.video_dropout, d.audio_dropout)
            keep = condition_dropout(batch_size, probabilities, generator).to(device)
            keep_text, keep_video, keep_audio = keep.unbind(0)
        if video_present is not None:
            video_present = video_present.to(device)
            keep_video = video_present if keep_video is None else keep_video & video_present
        if audio_present is not None:
            audio_present = audio_present.to(device)
            keep_audio = audio_present if keep_audio is None else keep_audio & audio_present
        text_tokens = self.text(text, batch_size, keep_text, text_features)
        video_tokens = self.video(
            video,
            batch_size,
            self.config.video_frames(duration),
            keep_video,
            video_features,
            video_mask,
        )
        audio_tokens, prompt = self.audio(
            audio_latents, audio_keep, batch_size, frames, keep_audio, audio_reference
        )
        streams, pooled = self.fusion(
            {"text": text_tokens, "video": video_tokens, "audio": audio_tokens}
        )
        return Conditions(streams["text"], streams["video"], streams["audio"], pooled, prompt)

    def unconditional(self, batch_size: int, frames: int, duration: float) -> Conditions:
        """Every modality absent (learned nulls): the CFG unconditional branch."""
        return self(batch_size, frames, duration)
