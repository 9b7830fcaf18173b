"""Audio-prompt conditioner and keep masks.

An audio prompt is codec latents aligned with the output (B, latent_dim, T) plus a keep mask
(B, 1, T) (1 = given, 0 = generate). Modes: `inpaint` (regenerate a span, keep the rest),
`continue` (keep the prefix [0, span_end)), `reference` (keep nothing; the whole clip is a
style prompt). The denoiser gets `prompt = cat[latents * keep, keep]` on its input channels;
the tokens (B, T, dim) see `cat[visible, keep]`, where visible = latents * keep, or the whole
latents for a reference sample (keep all zero), so a reference clip reaches the model only
through its tokens. (Trainers must therefore pass a reference taken from another crop.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from audiox_turbo.conditioning.layers import Transformer
from audiox_turbo.conditioning.tokens import ModalityTokens
from audiox_turbo.errors import AudioXError

AUDIO_MODES = ("inpaint", "continue", "reference")


def audio_keep_mask(
    mode: str,
    frames: int,
    span: tuple[float, float] | None,
    duration: float,
    batch_size: int,
) -> torch.Tensor:
    """Keep mask (B, 1, T=frames) float: 1 = keep the prompt frame, 0 = generate it.

    inpaint: regenerate frames [floor(s0*r), ceil(s1*r)) with r = frames / duration, keep the
    rest; continue: keep frames [0, floor(s1*r)); reference: all zeros (span ignored).
    """
    if mode not in AUDIO_MODES:
        raise AudioXError(f"unknown audio mode {mode!r}; choose one of {', '.join(AUDIO_MODES)}")
    keep = torch.zeros(batch_size, 1, frames)
    if mode == "reference":
        return keep
    if span is None:
        raise AudioXError(f"audio mode {mode!r} needs a span (start, end) in seconds")
    start, end = span
    if not 0.0 <= start < end <= duration + 1e-9:
        raise AudioXError(
            f"span ({start:g}, {end:g}) must satisfy 0 <= start < end <= duration ({duration:g} s)"
        )
    rate = frames / duration
    if mode == "continue":
        keep[..., : min(frames, math.floor(end * rate))] = 1.0
    else:
        keep[...] = 1.0
        keep[..., math.floor(start * rate) : min(frames, math.ceil(end * rate))] = 0.0
    return keep


def align_audio_prompt(
    latents: torch.Tensor,
    mode: str,
    span: tuple[float, float] | None,
    duration: float,
    frames: int,
    latent_rate: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One prompt's latents (D, Ta) aligned to the output (D, T=frames), and its keep (1, T).

    reference: tiled to T, keep nothing; continue: keep the prompt's own length unless a span
    says otherwise; inpaint: needs a span. Frames past the prompt's end are never kept.
    """
    have = latents.shape[-1]
    if mode == "reference":
        aligned = latents[:, torch.arange(frames, device=latents.device) % have]
        return aligned, torch.zeros(1, frames, device=latents.device)
    aligned = nn.functional.pad(latents[:, :frames], (0, max(0, frames - have)))
    if mode == "continue":
        span = span or (0.0, min(have / latent_rate, duration))
    elif span is None:
        raise AudioXError("audio mode 'inpaint' needs a span (start, end) in seconds to regenerate")
    keep = audio_keep_mask(mode, frames, span, duration, 1)[0].to(latents.device)
    keep[:, have:] = 0.0
    return aligned, keep


class AudioPromptConditioner(nn.Module):
    """Latents (B, latent_dim, T) + keep (B, 1, T) -> ModalityTokens (B, T, dim) and prompt."""

    def __init__(self, latent_dim: int, dim: int, heads: int, layers: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.proj = nn.Linear(latent_dim + 1, dim)
        self.transformer = Transformer(dim, heads, layers, rope=True)
        self.null = nn.Parameter(torch.randn(dim) * 0.02)

    def null_tokens(self, batch_size: int, frames: int) -> ModalityTokens:
        """The learned null over every latent frame: (B, T, dim), mask all True, absent."""
        device = self.null.device
        return ModalityTokens(
            self.null.expand(batch_size, frames, -1),
            torch.ones(batch_size, frames, dtype=torch.bool, device=device),
            torch.zeros(batch_size, dtype=torch.bool, device=device),
        )

    def forward(
        self,
        latents: torch.Tensor | None,
        keep: torch.Tensor | None,
        batch_size: int,
        frames: int,
        present: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
    ) -> tuple[ModalityTokens, torch.Tensor]:
        """Tokens (B, T, dim) and prompt (B, latent_dim + 1, T); zeros/null where absent.

        keep defaults to all zeros; present (B,) bool defaults to all True; reference (B,) bool
        says which samples use the whole clip as a style reference (tokens see all of it;
        default: exactly when keep is not given). Otherwise tokens see only latents * keep, so
        an inpaint span covering the whole clip reveals nothing.
        """
        dtype, device = self.proj.weight.dtype, self.proj.weight.device
        prompt = torch.zeros(batch_size, self.latent_dim + 1, frames, dtype=dtype, device=device)
        result = self.null_tokens(batch_size, frames)
        if latents is None:
            return result, prompt
        expected = (batch_size, self.latent_dim, frames)
        if tuple(latents.shape) != expected:
            raise ValueError(f"audio latents must be {expected}, got {tuple(latents.shape)}")
        latents = latents.to(device=device, dtype=dtype)
        if reference is None:
            reference = torch.full((batch_size,), keep is None, dtype=torch.bool)
        if keep is None:
            keep = torch.zeros(batch_size, 1, frames, dtype=dtype, device=device)
        elif tuple(keep.shape) != (batch_size, 1, frames):
            raise ValueError(
                f"audio keep must be {(batch_size, 1, frames)}, got {tuple(keep.shape)}"
            )
        keep = keep.to(device=device, dtype=dtype)
        given = torch.ones(batch_size, dtype=torch.bool, device=device)
        if present is not None:
            given = given & present.to(device)
        index = given.nonzero().flatten()
        if index.numel() == 0:
            return result, prompt
        lat, kp = latents.index_select(0, index), keep.index_select(0, index)
        is_reference = reference.to(device).index_select(0, index)[:, None, None]
        visible = torch.where(is_reference, lat, lat * kp)
        tokens = self.proj(torch.cat([visible, kp], dim=1).transpose(1, 2))
        tokens = self.transformer(tokens, result.mask.index_select(0, index))
        prompt = prompt.index_copy(0, index, torch.cat([lat * kp, kp], dim=1))
        return result.replace_samples(index, tokens, None, given), prompt
