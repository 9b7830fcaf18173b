"""Reconstruction, feature-matching and validation losses for codec training.

Waveforms are (batch, channels, samples); channels are folded into the batch for STFTs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from audiox_turbo.mel import mel_filterbank


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT| with a Hann window: (B, C, S) -> (B·C, n_fft // 2 + 1, frames), float32."""
    flat = wav.reshape(-1, wav.shape[-1]).float()
    window = torch.hann_window(n_fft, device=wav.device)
    spec = torch.stft(flat, n_fft, hop, window=window, return_complex=True)
    return spec.abs()


def multi_resolution_stft_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64, 32),
    hop_ratio: float = 0.25,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + L1 log-magnitude distance (scalar).

    Spectral convergence ‖|S|−|Ŝ|‖_F / ‖|S|‖_F; log term mean |log(|S|+eps) − log(|Ŝ|+eps)|.
    Resolutions longer than the signal are skipped.
    """
    total = pred.new_zeros((), dtype=torch.float32)
    used = 0
    for n_fft in fft_sizes:
        if n_fft > target.shape[-1]:
            continue
        hop = max(1, int(n_fft * hop_ratio))
        p, t = stft_magnitude(pred, n_fft, hop), stft_magnitude(target, n_fft, hop)
        convergence = torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp_min(eps)
        log_mag = (torch.log(t + eps) - torch.log(p + eps)).abs().mean()
        total = total + convergence + log_mag
        used += 1
    if used == 0:
        raise ValueError(f"signal of {target.shape[-1]} samples is shorter than every FFT size")
    return total / used


def waveform_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute sample difference (scalar)."""
    return (pred.float() - target.float()).abs().mean()


def si_sdr(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB per item: (B, C, S) -> (B,), channels flattened together."""
    p = pred.reshape(pred.shape[0], -1).double()
    t = target.reshape(target.shape[0], -1).double()
    p = p - p.mean(-1, keepdim=True)
    t = t - t.mean(-1, keepdim=True)
    scale = (p * t).sum(-1, keepdim=True) / (t.pow(2).sum(-1, keepdim=True) + eps)
    projection = scale * t
    noise = p - projection
    ratio = projection.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps)
    return (10 * torch.log10(ratio + eps)).float()


def mel_distance(
    pred: torch.Tensor,
    target: torch.Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    n_mels: int = 80,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Mean |log10 mel(pred) − log10 mel(target)| (scalar); FFT shrinks for short signals."""
    n_fft = min(n_fft, 2 ** int(math.log2(target.shape[-1])))
    n_mels = min(n_mels, n_fft // 4)
    bank = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels).T).float().to(target.device)
    p = bank @ stft_magnitude(pred, n_fft, n_fft // 4)
    t = bank @ stft_magnitude(target, n_fft, n_fft // 4)
    return (torch.log10(p + eps) - torch.log10(t + eps)).abs().mean()


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]],
    fake_features: Sequence[Sequence[torch.Tensor]],
    eps: float = 1e-8,
) -> torch.Tensor:
    """Mean over all layers of mean|f_real − f_fake| / mean|f_real| (relative L1)."""
    terms = []
    for real_layers, fake_layers in zip(real_features, fake_features, strict=True):
        for r, f in zip(real_layers, fake_layers, strict=True):
            r = r.detach().float()
            terms.append((r - f.float()).abs().mean() / (r.abs().mean() + eps))
    return torch.stack(terms).mean()
