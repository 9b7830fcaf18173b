"""The Conditioner: `ConditionInputs` (text, video, audio prompt) -> MAF -> `Conditions`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from audiox_turbo.conditioning.audio import AudioPromptConditioner
from audiox_turbo.conditioning.beat import BEAT_FEATURES, FIRST_BEAT_S, beat_grid, prompt_tempos
from audiox_turbo.conditioning.fusion import MultimodalAdaptiveFusion
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.conditioning.text import TextConditioner
from audiox_turbo.conditioning.tokens import ModalityTokens
from audiox_turbo.conditioning.video import VideoConditioner
from audiox_turbo.config import ModelConfig
from audiox_turbo.errors import AudioXError


@dataclass
class Conditions:
    """Everything the denoiser is conditioned on, for a batch of B samples.

    text (B, text_max_tokens, dim); video (B, Nv, dim), one token per frame; audio (B, T, dim),
    one token per latent frame; pooled (B, dim) from MAF; prompt (B, latent_dim + 1, T) =
    cat[audio-prompt latents * keep, keep], zeros when absent; beat (B, T, BEAT_FEATURES),
    the beat grid of the tempo the text states (zeros when none, no text, or no `beat_grid`).
    """

    text: ModalityTokens
    video: ModalityTokens
    audio: ModalityTokens
    pooled: torch.Tensor
    prompt: torch.Tensor
    beat: torch.Tensor

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
            torch.cat([c.beat for c in items]),
        )

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Conditions:
        """Move to a device; floating tensors optionally cast to `dtype` (masks stay bool)."""
        return Conditions(
            self.text.to(device, dtype),
            self.video.to(device, dtype),
            self.audio.to(device, dtype),
            self.pooled.to(device=device, dtype=dtype or self.pooled.dtype),
            self.prompt.to(device=device, dtype=dtype or self.prompt.dtype),
            self.beat.to(device=device, dtype=dtype or self.beat.dtype),
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
            self.beat.repeat_interleave(n, 0),
        )

    def head(self, n: int) -> Conditions:
        """The first n samples of the batch."""
        return Conditions.from_tensors({k: v[:n] for k, v in self.tensors().items()})

    def tensors(self) -> dict[str, torch.Tensor]:
        """A flat name -> tensor dict (for checkpoints); `from_tensors` inverts it."""
        flat = {"pooled": self.pooled, "prompt": self.prompt, "beat": self.beat}
        for name in MODALITIES:
            m: ModalityTokens = getattr(self, name)
            flat |= {
                f"{name}.tokens": m.tokens,
                f"{name}.mask": m.mask,
                f"{name}.present": m.present,
            }
        return flat

    @staticmethod
    def from_tensors(flat: dict[str, torch.Tensor]) -> Conditions:
        """The Conditions that `tensors` flattened."""
        tokens = {
            name: ModalityTokens(
                flat[f"{name}.tokens"], flat[f"{name}.mask"], flat[f"{name}.present"]
            )
            for name in MODALITIES
        }
        prompt = flat["prompt"]
        beat = flat.get("beat")  # absent from checkpoints written before the beat grid
        if beat is None:
            beat = prompt.new_zeros(prompt.shape[0], prompt.shape[-1], BEAT_FEATURES)
        return Conditions(**tokens, pooled=flat["pooled"], prompt=prompt, beat=beat)


MODALITIES = ("text", "video", "audio")
"""The token fields of `Conditions`, in order."""


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
        inputs: ConditionInputs,
        frames: int,
        duration: float,
        drop: bool = False,
        generator: torch.Generator | None = None,
    ) -> Conditions:
        """Conditions for `inputs.batch_size` samples of `frames` latent frames (`duration` s).

        Video has config.video_frames(duration) frames. Cached text/video features skip their
        frozen encoder (a trainable encoder refuses them). drop=True drops each modality per
        sample with config.denoiser.*_dropout (train time), drawn from `generator`.
        """
        self._check_cached(inputs)
        batch_size = inputs.batch_size
        device = self.text.null.device
        keep_text = keep_video = keep_audio = None
        if drop:
            d = self.config.denoiser
            probabilities = (d.text_dropout, d.video_dropout, d.audio_dropout)
            keep = condition_dropout(batch_size, probabilities, generator).to(device)
            keep_text, keep_video, keep_audio = keep.unbind(0)
        keep_video = _both(keep_video, inputs.video_present, device)
        keep_audio = _both(keep_audio, inputs.audio_present, device)
        text_features = None
        if inputs.text_features is not None:
            mask = inputs.text_mask
            if mask is None:
                mask = torch.ones(inputs.text_features.shape[:2], dtype=torch.bool)
            text_features = (inputs.text_features, mask)
        text_tokens = self.text(inputs.text, batch_size, keep_text, text_features)
        video_tokens = self.video(
            inputs.video,
            batch_size,
            self.config.video_frames(duration),
            keep_video,
            inputs.video_features,
            inputs.video_mask,
        )
        audio_tokens, prompt = self.audio(
            inputs.audio_latents,
            inputs.audio_keep,
            batch_size,
            frames,
            keep_audio,
            inputs.audio_reference,
        )
        streams, pooled = self.fusion(
            {"text": text_tokens, "video": video_tokens, "audio": audio_tokens}
        )
        first = inputs.first_beat
        if first is None:
            first = torch.full((batch_size,), FIRST_BEAT_S, dtype=torch.float64)
        tempo = torch.zeros(batch_size, dtype=torch.float64)
        if self.config.conditioning.beat_grid:
            tempo = prompt_tempos(inputs.text, text_tokens.present, batch_size)
        beat = beat_grid(tempo, first.cpu(), frames, self.config.codec.latent_rate).to(device)
        return Conditions(streams["text"], streams["video"], streams["audio"], pooled, prompt, beat)

    def unconditional(self, batch_size: int, frames: int, duration: float) -> Conditions:
        """Every modality absent (learned nulls): the CFG unconditional branch."""
        return self(ConditionInputs(batch_size), frames, duration)

    def _check_cached(self, inputs: ConditionInputs) -> None:
        """Cached features skip an encoder: refuse them where that encoder is trainable."""
        if inputs.text_features is not None and not self.text.frozen_encoder:
            encoder = self.config.conditioning.text_encoder
            raise AudioXError(
                f"cached text features were given, but text encoder {encoder!r} is trainable "
                "and would be bypassed; use a frozen encoder (minilm, t5) or data without "
                "cached text features"
            )
        if inputs.video_features is not None and not self.video.frozen_encoder:
            encoder = self.config.conditioning.video_encoder
            raise AudioXError(
                f"cached video features were given, but video encoder {encoder!r} is trainable "
                "and would be bypassed; use a frozen encoder (video_encoder 'clip' or 'motion') "
                "or data with video frames"
            )


def _both(
    keep: torch.Tensor | None, present: torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """The per-sample AND of two optional (B,) bool flags."""
    if present is None:
        return keep
    present = present.to(device)
    return present if keep is None else keep & present
