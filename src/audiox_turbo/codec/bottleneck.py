"""The VAE bottleneck every codec shares: posterior from encoder statistics, sampling, the KL
term, and decoding long latents in overlapping chunks."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

STD_FLOOR = 1e-4


def posterior(stats: Tensor) -> tuple[Tensor, Tensor]:
    """Encoder statistics (B, 2·D, T) = mean ‖ scale -> mean, std (B, D, T);
    std = softplus(scale) + 1e-4 (the official bottleneck)."""
    mean, scale = stats.chunk(2, dim=1)
    return mean, F.softplus(scale) + STD_FLOOR


def sample_posterior(
    mean: Tensor, std: Tensor, sample: bool, generator: torch.Generator | None = None
) -> Tensor:
    """mean + std·ε (ε from `generator` or the global RNG) when `sample`, else the mean."""
    if not sample:
        return mean
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * noise


def kl_divergence(mean: Tensor, std: Tensor) -> Tensor:
    """KL term of the official VAE bottleneck: sum over channels of (μ²+σ²−log σ²−1), mean over
    batch and time; mean, std (B,D,T) -> scalar (no 1/2 factor, as in stable-audio-tools)."""
    var = std.pow(2)
    return (mean.pow(2) + var - var.log() - 1.0).sum(dim=1).mean()


def decode_in_chunks(
    decode: Callable[[Tensor], Tensor],
    latents: Tensor,
    scale: int,
    out_channels: int,
    chunk_frames: int,
    overlap_frames: int,
) -> Tensor:
    """(B,D,T) -> (B,out_channels,T·scale) by a `decode` that maps T frames to T·scale, run
    over windows of ≤ chunk_frames + 2·overlap_frames frames.

    Each chunk is decoded with `overlap_frames` of context on both sides and only its centre
    is kept; with overlap ≥ the decoder's receptive radius the result equals one `decode` up
    to float rounding.
    """
    if chunk_frames < 1 or overlap_frames < 0:
        raise ValueError(
            f"chunk_frames must be >= 1 and overlap_frames >= 0, "
            f"got {chunk_frames} and {overlap_frames}"
        )
    frames = latents.shape[-1]
    if frames <= chunk_frames:
        return decode(latents)
    ds = scale
    out = latents.new_empty(latents.shape[0], out_channels, frames * ds)
    for start in range(0, frames, chunk_frames):
        end = min(start + chunk_frames, frames)
        lo, hi = max(0, start - overlap_frames), min(frames, end + overlap_frames)
        piece = decode(latents[..., lo:hi])
        out[..., start * ds : end * ds] = piece[..., (start - lo) * ds : (end - lo) * ds]
    return out
