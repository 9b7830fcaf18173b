"""STFT and inverse STFT with "same" padding: a signal of L = F·hop samples has exactly F
frames, and the inverse of F frames is exactly F·hop samples (perfect reconstruction).

The signal is zero-padded by (n_fft − hop)/2 on both sides and framed without centring; the
inverse overlap-adds windowed frames, divides by the summed squared window and trims the
padding. (torch.istft cannot do this: with `center=False` the window envelope is zero at the
padded edges and it refuses.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def same_padding(n_fft: int, hop: int) -> int:
    """Samples of zero padding on each side: (n_fft − hop)/2."""
    return (n_fft - hop) // 2


def stft_same(wav: Tensor, n_fft: int, hop: int, window: Tensor) -> Tensor:
    """(N, F·hop) real -> complex (N, n_fft//2 + 1, F)."""
    pad = same_padding(n_fft, hop)
    padded = F.pad(wav, (pad, pad))
    return torch.stft(padded, n_fft, hop, window=window, center=False, return_complex=True)


def istft_same(spec: Tensor, n_fft: int, hop: int, window: Tensor) -> Tensor:
    """complex (N, n_fft//2 + 1, F) -> real (N, F·hop): windowed overlap-add / Σ window²."""
    frames = spec.shape[-1]
    pad = same_padding(n_fft, hop)
    length = (frames - 1) * hop + n_fft
    pieces = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]
    fold = dict(output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop))
    signal = F.fold(pieces, **fold)[:, 0, 0]
    squared = window.square()[None, :, None].expand(1, n_fft, frames)
    envelope = F.fold(squared, **fold)[0, 0, 0]
    return signal[:, pad : pad + frames * hop] / envelope[pad : pad + frames * hop]


def spectral_peak_regions(log_magnitude: Tensor) -> tuple[Tensor, Tensor]:
    """(N, bins, F) log-magnitudes -> region (N, bins, F) int64, the index of each bin's nearest
    local maximum (ties to the lower), and that peak's fractional bin (N, bins, F) float64 from
    a parabola through the peak and its two neighbours (quadratic interpolation)."""
    m = log_magnitude.double()
    left = torch.cat([m[:, :1] - 1, m[:, :-1]], dim=1)
    right = torch.cat([m[:, 1:], m[:, -1:] - 1], dim=1)
    is_peak = (m > left) & (m >= right)
    curvature = left - 2 * m + right
    offset = torch.where(curvature < -1e-9, 0.5 * (left - right) / curvature, 0.0)
    bins = m.shape[1]
    index = torch.arange(bins, device=m.device)[None, :, None].expand(m.shape)
    below = torch.where(is_peak, index, -1).cummax(dim=1).values
    above = torch.where(is_peak, index, bins).flip(1).cummin(dim=1).values.flip(1)
    take_above = (below < 0) | ((above < bins) & (above - index < index - below))
    region = torch.where(take_above, above, below).clamp(0, bins - 1)
    return region, region.double() + offset.clamp(-0.5, 0.5).gather(1, region)


def peak_locked_phase(log_magnitude: Tensor, n_fft: int, hop: int) -> Tensor:
    """(N, bins, F) log-magnitudes -> phases (N, bins, F) float64 of a stationary-sinusoid
    model (a phase vocoder with identity phase locking, Laroche & Dolson 1999).

    Each bin belongs to its nearest spectral peak, a sinusoid at the peak's interpolated
    frequency ω. The sinusoid's phase at the window centre, Ψ, advances by hop·ω per frame
    (the mean ω of the two frames), continued from the previous frame's Ψ at the peak's bin;
    for a Hann window centred at n_fft/2 the bin's phase is then Ψ − π·k.
    """
    region, peak_bin = spectral_peak_regions(log_magnitude)
    omega = (2 * math.pi / n_fft) * peak_bin
    n, bins, frames = omega.shape
    alternation = math.pi * torch.arange(bins, device=omega.device, dtype=torch.float64)
    phase = torch.empty_like(omega)
    centre = torch.zeros(n, bins, device=omega.device, dtype=torch.float64)
    for t in range(frames):
        r = region[:, :, t]
        if t > 0:
            advance = 0.5 * hop * (omega[:, :, t - 1].gather(1, r) + omega[:, :, t])
            centre = (centre.gather(1, r) + advance).remainder(2 * math.pi)
        phase[:, :, t] = centre - alternation
    return phase
