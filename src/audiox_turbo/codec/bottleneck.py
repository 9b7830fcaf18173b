"""The VAE bottleneck every codec shares: posterior from encoder statistics, sampling, the KL
term, decoding long latents in overlapping chunks, and the codec interface around them
(`VariationalCodec`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.config import CodecConfig

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


class VariationalCodec(nn.Module):
    """Encoder (waveform -> mean ‖ scale) + this bottleneck + decoder, the interface every
    codec kind shares; latents are multiplied by `config.latent_scale` on encode and divided
    by it on decode. Subclasses build `encoder` and `decoder` and add `decode_chunked`."""

    kind: str

    def __init__(self, config: CodecConfig, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.decoder = decoder

    @classmethod
    def check_kind(cls, config: CodecConfig) -> None:
        """A ValueError unless `config.kind` is this class's kind."""
        if config.kind != cls.kind:
            raise ValueError(f"{cls.__name__} needs codec kind {cls.kind!r}, got {config.kind!r}")

    def encode_posterior(self, wav: Tensor) -> tuple[Tensor, Tensor]:
        """(B,C,S) -> mean, std (B,D,ceil(S/ds)); std = softplus(scale) + 1e-4.

        The waveform is zero-padded on the right to a multiple of the downsampling factor, so
        every input sample is covered (the official code floors instead; equal for multiples).
        """
        return posterior(self.encoder(self.padded_input(wav)))

    def padded_input(self, wav: Tensor) -> Tensor:
        """(B,C,S) -> (B,C,ceil(S/ds)·ds), zeros on the right; a ValueError for another shape."""
        if wav.ndim != 3 or wav.shape[1] != self.config.audio_channels:
            raise ValueError(
                f"expected a waveform (B, {self.config.audio_channels}, S), got {tuple(wav.shape)}"
            )
        return F.pad(wav, (0, -wav.shape[-1] % self.config.downsampling))

    def encode(
        self, wav: Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> Tensor:
        """(B,C,S) -> latents (B,D,ceil(S/ds)): mean + std·ε when `sample`, else the mean, times
        `latent_scale`; ε is drawn from `generator` (or the global RNG), which reproduces the
        official `randn_like` draw for the same seed."""
        latents = sample_posterior(*self.encode_posterior(wav), sample, generator)
        return latents * self.config.latent_scale

    def decode(self, latents: Tensor) -> Tensor:
        """(B,D,T) latents (scaled by `latent_scale`) -> waveform (B,C,T·ds)."""
        return self.decoder(latents / self.config.latent_scale)
