"""`ConditionInputs`: the prompts of a batch, raw or cached, as the conditioner takes them.

Built by the pipeline (`AudioXTurbo.encode_prompts`) and by the training batches
(`data.dataset.condition_inputs`); `Conditioner.forward` is the one place that decides between
raw media and cached frozen-encoder features.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ConditionInputs:
    """Text, video and audio prompts for B samples; every field but `batch_size` is optional.

    text: B prompts (None = absent); `text_features` (B, L, text_feature_dim) with `text_mask`
    (B, L) bool, when given, are the cached frozen-encoder states of those prompts (the
    encoder is skipped; the prompts still say which samples have text).
    video: uint8 frames (B, Nv, 3, H, W), or instead cached `video_features`
    (B, Nv, video_feature_dim); `video_mask` (B, Nv) bool marks real (not padded) frames;
    `video_present` (B,) bool says which samples have a video.
    audio: codec latents `audio_latents` (B, latent_dim, T) aligned with the output, `audio_keep`
    (B, 1, T) 1 where the prompt is kept (inpaint/continue), `audio_present` (B,) bool and
    `audio_reference` (B,) bool for a whole-clip style reference (audio mode "reference").
    first_beat: (B,) seconds from the output's start to the first beat of a tempo the text
    states (`conditioning.beat`; default `FIRST_BEAT_S`).
    """

    batch_size: int
    text: list[str | None] | None = None
    text_features: Tensor | None = None
    text_mask: Tensor | None = None
    video: Tensor | None = None
    video_features: Tensor | None = None
    video_mask: Tensor | None = None
    video_present: Tensor | None = None
    audio_latents: Tensor | None = None
    audio_keep: Tensor | None = None
    audio_present: Tensor | None = None
    audio_reference: Tensor | None = None
    first_beat: Tensor | None = None

    def __post_init__(self) -> None:
        if self.video is not None and self.video_features is not None:
            raise ValueError("give video frames or cached video features, not both")
        if self.text is not None and len(self.text) != self.batch_size:
            raise ValueError(f"{len(self.text)} text prompts for a batch of {self.batch_size}")

    def with_audio_prompt(
        self,
        latents: Tensor,
        keep: Tensor,
        present: Tensor,
        reference: Tensor | None = None,
    ) -> ConditionInputs:
        """A copy with the audio prompt: latents (B, D, T), keep (B, 1, T), present (B,) bool."""
        return dataclasses.replace(
            self,
            audio_latents=latents,
            audio_keep=keep,
            audio_present=present,
            audio_reference=reference,
        )

    def to(self, device: torch.device | str) -> ConditionInputs:
        """Every tensor moved to `device` (dtypes unchanged)."""
        moved = {
            f.name: value.to(device)
            for f in dataclasses.fields(self)
            if isinstance(value := getattr(self, f.name), Tensor)
        }
        return dataclasses.replace(self, **moved)
