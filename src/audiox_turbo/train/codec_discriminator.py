"""Multi-scale complex-STFT discriminator (EnCodec-style layout) for codec training.

Each scale sees the real and imaginary STFT parts as 2·channels input planes, runs 2-D
convolutions that stride over frequency and dilate over time, and returns a logit map and
the intermediate feature maps (for feature matching).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class STFTDiscriminator(nn.Module):
    """One resolution: (B, C, S) waveform -> logits (B, 1, frames', freq') + feature maps."""

    def __init__(self, audio_channels: int, filters: int, n_fft: int, dilations=(1, 2, 4)) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        layers = [nn.Conv2d(2 * audio_channels, filters, (3, 9), padding=(1, 4))]
        for d in dilations:
            layers.append(
                nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4))
            )
        layers.append(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1)))
        self.layers = nn.ModuleList(layers)
        self.act = nn.LeakyReLU(0.2)
        self.out = nn.Conv2d(filters, 1, (3, 3), padding=(1, 1))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, s = wav.shape
        spec = torch.stft(
            wav.reshape(b * c, s).float(),
            self.n_fft,
            self.hop,
            window=self.window,
            return_complex=True,
        )
        planes = torch.view_as_real(spec).permute(0, 3, 2, 1)
        x = planes.reshape(b, c * 2, planes.shape[2], planes.shape[3])
        x = x.to(self.out.weight.dtype)
        features = []
        for layer in self.layers:
            x = self.act(layer(x))
            features.append(x)
        return self.out(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """STFT discriminators at several FFT sizes; forward returns per-scale logits and features."""

    def __init__(
        self, audio_channels: int, filters: int = 32, fft_sizes: Sequence[int] = (2048, 1024, 512)
    ) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            STFTDiscriminator(audio_channels, filters, n) for n in fft_sizes
        )

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, features = [], []
        for scale in self.scales:
            out, feats = scale(wav)
            logits.append(out)
            features.append(feats)
        return logits, features
