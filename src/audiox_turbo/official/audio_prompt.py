"""The official audio-prompt conditioner (AudioAutoencoderConditioner, spec §3.3).

Its own copy of the Oobleck VAE (`codec`, released prefix
`conditioner.conditioners.audio_prompt.pretransform.model.`) encodes the prompt *sampled*;
a random 25–75 % span of the prompt is zeroed first, also at inference. `proj_features_128`
maps the 215 latent frames to 128 tokens before `proj_out` widens 64 channels to 768.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.codec.oobleck import OobleckVAE
from audiox_turbo.official.config import OfficialConfig

_STD_FLOOR = 1e-4


def match_channels(wav: Tensor, channels: int) -> Tensor:
    """(B,C,N) -> (B,channels,N) as the official `set_audio_channels`: a mono target averages
    the channels, mono input is repeated, other extra channels are dropped."""
    if wav.shape[1] == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=1, keepdim=True)
    if wav.shape[1] == 1:
        return wav.expand(-1, channels, -1)
    return wav[:, :channels]


class OfficialAudioPromptConditioner(nn.Module):
    """Prompt waveform (B,C,N) -> tokens (B,128,D); N must give `prompt_latent_frames` frames."""

    def __init__(self, config: OfficialConfig) -> None:
        super().__init__()
        self.channels = config.codec.audio_channels
        self.mask_min = config.prompt_mask_min
        self.mask_max = config.prompt_mask_max
        self.codec = OobleckVAE(config.codec)
        self.proj_out = nn.Linear(config.codec.latent_dim, config.cond_dim)
        self.proj_features_128 = nn.Linear(config.prompt_latent_frames, config.cond_tokens)
        self._silence: tuple[Hashable, Tensor, Tensor] | None = None

    def mask_span(self, wav: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Zero one random contiguous span of int(N·U[min,max)) samples per item (B,C,N)."""
        if not self.mask_min < self.mask_max:
            return wav
        b, _, n = wav.shape
        ratios = torch.rand(b, generator=generator, device=wav.device)
        ratios = ratios * (self.mask_max - self.mask_min) + self.mask_min
        wav = wav.clone()
        for i in range(b):
            length = int(n * ratios[i].item())
            start = int(
                torch.randint(0, n - length + 1, (1,), generator=generator, device=wav.device)
            )
            wav[i, :, start : start + length] = 0
        return wav

    def posterior(self, item: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder mean and std (1,64,floor(N/ds)) of one waveform (1,C,N)."""
        mean, scale = self.codec.encoder(item).chunk(2, dim=1)
        return mean, F.softplus(scale) + _STD_FLOOR

    def silence_posterior(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """`posterior` of silence shaped like one item (1,C,N); cached until the encoder's
        weights change (the no-audio prompt encodes the same silence on every call).

        A change is seen through each weight's storage and version counter, which every
        in-place update through autograd-visible ops bumps (not writes through `.data`).
        """
        weights = tuple((p.data_ptr(), p._version) for p in self.codec.encoder.parameters())
        key = (tuple(like.shape), like.device, like.dtype, weights)
        if self._silence is None or self._silence[0] != key:
            with torch.no_grad():
                self._silence = (key, *self.posterior(torch.zeros_like(like)))
        return self._silence[1], self._silence[2]

    def encode(
        self, wav: Tensor, generator: torch.Generator | None = None, silent: bool = False
    ) -> Tensor:
        """(B,C,N) -> sampled latents (B,64,floor(N/ds)) as the official: the encoder runs one
        item at a time, the bottleneck noise is drawn once for the whole batch.

        The encoder sees the waveform unpadded (the official floors the frame count). With
        `silent` the waveform is known to be all zeros and the cached silence posterior is used.
        """
        posteriors = [
            self.silence_posterior(item) if silent else self.posterior(item)
            for item in wav.split(1)
        ]
        mean = torch.cat([m for m, _ in posteriors])
        std = torch.cat([s for _, s in posteriors])
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + std * noise

    def forward(
        self, wav: Tensor, generator: torch.Generator | None = None, silent: bool = False
    ) -> Tensor:
        """(B,C,N) -> (B,128,D): mask, sampled VAE encode, time projection, channel projection.

        `silent`: wav is all zeros (no audio prompt); the random draws are made all the same.
        """
        wav = self.mask_span(match_channels(wav, self.channels), generator)
        latents = self.encode(wav, generator, silent).to(self.proj_features_128.weight.dtype)
        return self.proj_out(self.proj_features_128(latents).transpose(1, 2))
