"""STFT and inverse STFT with "same" padding: a signal of L = F·hop samples has exactly F
frames, and the inverse of F frames is exactly F·hop samples (perfect reconstruction).

The signal is zero-padded by (n_fft − hop)/2 on both sides and framed without centring; the
inverse overlap-adds windowed frames, divides by the summed squared window and trims the
padding. (torch.istft cannot do this: with `center=False` the window envelope is zero at the
padded edges and it refuses.)
"""

from __future__ import annotations

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
