"""Waveform preparation (mono, soxr resampling) and the log-mel front ends of VGGish and PaSST.

Both use Kaldi-style mel banks (`audiox_turbo.mel.mel_filterbank`, style "kaldi"), as the
original projects do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.mel import mel_filterbank

Waveforms = Tensor | np.ndarray | Sequence[Tensor | np.ndarray]


def _to_mono(clip: Tensor | np.ndarray) -> np.ndarray:
    """`(S,)` or `(channels, S)` → float32 `(S,)` (channel mean)."""
    arr = clip.detach().float().cpu().numpy() if isinstance(clip, Tensor) else np.asarray(clip)
    if arr.ndim == 2:
        arr = arr.mean(axis=0)
    if arr.ndim != 1:
        raise ValueError(f"a clip must be (samples,) or (channels, samples), got {arr.shape}")
    return arr.astype(np.float32, copy=False)


def mono_at_rate(waveforms: Waveforms, sr: int, target_sr: int) -> list[np.ndarray]:
    """Batch `(B, C, S)` / `(B, S)` or a sequence of clips → list of mono float32 `(S',)` at
    `target_sr` (channel mean, then soxr high-quality resampling)."""
    if isinstance(waveforms, Tensor | np.ndarray):
        batch = waveforms
        if batch.ndim not in (2, 3):
            raise ValueError(f"waveforms must be (B, C, S) or (B, S), got {tuple(batch.shape)}")
        clips = [_to_mono(batch[i]) for i in range(batch.shape[0])]
    else:
        clips = [_to_mono(c) for c in waveforms]
    if sr == target_sr or not clips:
        return clips
    if len({c.size for c in clips}) == 1:
        stacked = soxr.resample(np.stack(clips, axis=1), sr, target_sr)
        return [np.ascontiguousarray(stacked[:, i], dtype=np.float32) for i in range(len(clips))]
    return [soxr.resample(c, sr, target_sr).astype(np.float32) for c in clips]


def periodic_hann(length: int) -> np.ndarray:
    """Periodic Hann window `(length,)`: 0.5 − 0.5·cos(2πn/length)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


class VGGishFrontEnd(nn.Module):
    """16 kHz waveform → VGGish examples: 25 ms periodic-Hann STFT (10 ms hop, 512-point FFT),
    magnitude, 64 HTK mel bands 125–7500 Hz, log(mel + 0.01), 0.96 s patches without overlap."""

    sample_rate = 16000
    window = 400
    hop = 160
    n_fft = 512
    patch_frames = 96

    def __init__(self) -> None:
        super().__init__()
        mel = mel_filterbank(self.sample_rate, self.n_fft, 64, 125.0, 7500.0, "kaldi")
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)
        hann = torch.from_numpy(periodic_hann(self.window)).float()
        self.register_buffer("hann", hann, persistent=False)

    @property
    def min_samples(self) -> int:
        """Samples giving exactly one patch; shorter clips are zero-padded to this length."""
        return self.window + (self.patch_frames - 1) * self.hop

    def log_mel(self, wave: Tensor) -> Tensor:
        """`(B, S)` → `(B, 1 + (S − 400)//160, 64)` log mel frames."""
        frames = wave.unfold(-1, self.window, self.hop) * self.hann
        magnitude = torch.fft.rfft(frames, n=self.n_fft).abs()
        return torch.log(magnitude @ self.mel + 0.01)

    def forward(self, wave: Tensor) -> Tensor:
        """`(B, S)` → `(B, patches, 96, 64)`; S < min_samples is zero-padded."""
        if wave.shape[-1] < self.min_samples:
            wave = F.pad(wave, (0, self.min_samples - wave.shape[-1]))
        mel = self.log_mel(wave)
        return mel.unfold(1, self.patch_frames, self.patch_frames).transpose(-1, -2)


class PasstFrontEnd(nn.Module):
    """32 kHz waveform → PaSST input (hear21passt AugmentMelSTFT at eval time): pre-emphasis
    [−0.97, 1], STFT (1024-point FFT, 800-sample symmetric Hann, hop 320, centred), power,
    Kaldi mel banks, log(mel + 1e-5), then (x + 4.5)/5."""

    def __init__(
        self,
        sample_rate: int = 32000,
        n_mels: int = 128,
        n_fft: int = 1024,
        win_length: int = 800,
        hop: int = 320,
        fmin: float = 0.0,
        fmax: float = 15000.0,
    ) -> None:
        super().__init__()
        self.n_fft, self.win_length, self.hop = n_fft, win_length, hop
        mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, "kaldi").T
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)
        window = torch.hann_window(win_length, periodic=False)
        self.register_buffer("window", window, persistent=False)
        preemphasis = torch.tensor([[[-0.97, 1.0]]])
        self.register_buffer("preemphasis", preemphasis, persistent=False)

    def forward(self, wave: Tensor) -> Tensor:
        """`(B, S)` → `(B, n_mels, 1 + (S − 1)//hop)` normalised log mel (S > n_fft/2 + 1)."""
        x = F.conv1d(wave.unsqueeze(1), self.preemphasis).squeeze(1)
        spec = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hop,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real**2 + spec.imag**2
        return (torch.log(self.mel @ power + 1e-5) + 4.5) / 5.0
