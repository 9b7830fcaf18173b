"""PANNs CNN14 (Kong et al. 2020) in the layout of `Cnn14_mAP=0.431.pth`: 32 kHz, 64 mel
bands 50–14000 Hz, six conv blocks, 2048-d clip embedding and 527 AudioSet classes.

Key names follow qiuqiangkong/audioset_tagging_cnn (`{"model": state_dict}`):
`spectrogram_extractor.stft.conv_{real,imag}.weight (513, 1, 1024)` (torchlibrosa's STFT as
convolutions), `logmel_extractor.melW (513, 64)`, `bn0`, `conv_block1..6.{conv1,conv2,bn1,bn2}`,
`fc1`, `fc_audioset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.eval.embedders import (
    ClassActivation,
    EmbeddingKind,
    WaveformEmbedder,
    load_weights,
    read_state_dict,
)
from audiox_turbo.eval.features import Waveforms, periodic_hann
from audiox_turbo.mel import mel_filterbank

CNN14_FILE = "Cnn14_mAP=0.431.pth (PANNs, audioset_tagging_cnn)"


@dataclass(frozen=True)
class Cnn14Config:
    """Front end and widths of CNN14 (published defaults)."""

    sample_rate: int = 32000
    n_fft: int = 1024
    hop: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    num_classes: int = 527
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)


class StftConv(nn.Module):
    """Windowed DFT as two strided convolutions (torchlibrosa `STFT`): real and imaginary parts
    `(B, n_fft//2 + 1, frames)` of `(B, 1, S)`."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        phase = 2.0 * np.pi * np.outer(np.arange(bins), np.arange(n_fft)) / n_fft
        window = periodic_hann(n_fft)[None, :]
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(np.cos(phase) * window)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(-np.sin(phase) * window)[:, None, :])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """`(B, 1, S)` → (real, imag), each `(B, bins, frames)`."""
        return self.conv_real(x), self.conv_imag(x)


class PowerSpectrogram(nn.Module):
    """`(B, S)` → power spectrogram `(B, 1, 1 + S//hop, n_fft//2 + 1)` (centred, reflect pad)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.stft = StftConv(n_fft, hop)

    def forward(self, wave: Tensor) -> Tensor:
        padded = F.pad(wave[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real, imag = self.stft(padded)
        return (real**2 + imag**2).transpose(1, 2)[:, None]


class LogMelFilterBank(nn.Module):
    """Power spectrogram `(B, 1, T, F)` → 10·log10(max(mel, 1e-10)) `(B, 1, T, n_mels)`."""

    def __init__(self, config: Cnn14Config) -> None:
        super().__init__()
        mel = mel_filterbank(
            config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax, "slaney"
        )
        self.melW = nn.Parameter(torch.from_numpy(mel).float(), requires_grad=False)

    def forward(self, power: Tensor) -> Tensor:
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))


class ConvBlock(nn.Module):
    """Two 3×3 conv + BN + ReLU layers, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor, pool: tuple[int, int]) -> Tensor:
        """`(B, C_in, T, M)` → `(B, C_out, T/pool₀, M/pool₁)`."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14(nn.Module):
    """Waveform `(B, S)` at 32 kHz → (embedding `(B, widths[-1])`, logits `(B, classes)`);
    the published model's clipwise output is sigmoid(logits)."""

    def __init__(self, config: Cnn14Config = Cnn14Config()) -> None:
        super().__init__()
        self.config = config
        self.spectrogram_extractor = PowerSpectrogram(config.n_fft, config.hop)
        self.logmel_extractor = LogMelFilterBank(config)
        self.bn0 = nn.BatchNorm2d(config.n_mels)
        channels = (1, *config.widths)
        for i in range(len(config.widths)):
            self.add_module(f"conv_block{i + 1}", ConvBlock(channels[i], channels[i + 1]))
        self.fc1 = nn.Linear(config.widths[-1], config.widths[-1])
        self.fc_audioset = nn.Linear(config.widths[-1], config.num_classes)

    @property
    def min_samples(self) -> int:
        """Shortest input whose time axis survives the five 2× poolings; shorter is padded."""
        return (2 ** (len(self.config.widths) - 1)) * self.config.hop

    def log_mel(self, wave: Tensor) -> Tensor:
        """`(B, S)` → `(B, 1, 1 + S//hop, n_mels)` log mel in dB."""
        return self.logmel_extractor(self.spectrogram_extractor(wave))

    def forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        if wave.shape[-1] < self.min_samples:
            wave = F.pad(wave, (0, self.min_samples - wave.shape[-1]))
        x = self.bn0(self.log_mel(wave).transpose(1, 3)).transpose(1, 3)
        blocks = len(self.config.widths)
        for i in range(blocks):
            pool = (2, 2) if i < blocks - 1 else (1, 1)
            x = getattr(self, f"conv_block{i + 1}")(x, pool)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)


class PannsEmbedder(WaveformEmbedder):
    """Clip embedder and AudioSet tagger: `(B, C, S)` → `(B, 2048)`, logits `(B, 527)`."""

    name = "panns"
    kind: EmbeddingKind = "clip"
    activation: ClassActivation = "sigmoid"

    def __init__(self, network: Cnn14, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.sample_rate = network.config.sample_rate
        self.dim = network.config.widths[-1]
        self.num_classes = network.config.num_classes

    def _forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        return self.network(wave)

    def classify(self, waveforms: Waveforms, sr: int) -> Tensor:
        """AudioSet logits `(B, 527)`; class probabilities are their sigmoids."""
        return self._outputs(waveforms, sr)[1]

    def embed_and_classify(self, waveforms: Waveforms, sr: int) -> tuple[Tensor, Tensor]:
        """Embeddings `(B, 2048)` and logits `(B, 527)` from one forward pass."""
        embedding, logits = self._outputs(waveforms, sr)
        return embedding, logits


def load_panns(
    checkpoint: str | Path | None, device: str = "cpu", config: Cnn14Config = Cnn14Config()
) -> PannsEmbedder:
    """CNN14 from a PANNs checkpoint (`{"model": state_dict, ...}` or a bare state dict)."""
    state = read_state_dict(checkpoint, CNN14_FILE)
    network = Cnn14(config)
    load_weights(network, state, checkpoint)
    return PannsEmbedder(network, device=device)
