"""Oobleck VAE (Stable Audio Open codec) with the official stable-audio-tools state-dict layout.

Parameter names match `AudioAutoencoder.state_dict()` exactly (`encoder.layers.N...`,
`decoder.layers.N...`, weight-norm convs as `bias`/`weight_g`/`weight_v`, SnakeBeta
`alpha`/`beta`), so the released `vae.ckpt` loads strictly without key mapping. Facts from
the official spec §1 (layout, SnakeBeta, bottleneck, KL).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.codec.bottleneck import VariationalCodec, decode_in_chunks
from audiox_turbo.config import CodecConfig
from audiox_turbo.errors import ModelLoadError


def _weight_norm(weight_g: Tensor, weight_v: Tensor) -> Tensor:
    """Effective weight g·v/‖v‖, the norm over every axis but 0 (classic weight_norm, dim 0)."""
    norm = torch.linalg.vector_norm(weight_v, dim=tuple(range(1, weight_v.ndim)), keepdim=True)
    return weight_g * (weight_v / norm)


class _WeightNormConv(nn.Module):
    """Shared storage of a weight-normalised 1-D convolution: bias, weight_g, weight_v."""

    def __init__(
        self, v_shape: tuple[int, int, int], bias_channels: int, fan_in: int, bias: bool
    ) -> None:
        super().__init__()
        # Registered in the order the official state dict lists them: bias, weight_g, weight_v.
        self.bias = nn.Parameter(torch.empty(bias_channels)) if bias else None
        self.weight_g = nn.Parameter(torch.empty(v_shape[0], 1, 1))
        self.weight_v = nn.Parameter(torch.empty(v_shape))
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            nn.init.uniform_(self.weight_v, -bound, bound)
            self.weight_g.copy_(torch.linalg.vector_norm(self.weight_v, dim=(1, 2), keepdim=True))
            if self.bias is not None:
                nn.init.uniform_(self.bias, -bound, bound)

    def weight(self) -> Tensor:
        """The effective convolution weight, same shape as `weight_v`."""
        return _weight_norm(self.weight_g, self.weight_v)


class WeightNormConv1d(_WeightNormConv):
    """Conv1d with weight norm: weight_v (out, in, k), weight_g (out, 1, 1).

    (B, in, L) -> (B, out, L_out) as `torch.nn.Conv1d` with the same arguments.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            (out_channels, in_channels, kernel_size), out_channels, in_channels * kernel_size, bias
        )
        self.stride = stride
        self.padding = padding
        self.dilation = dilation

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(
            x,
            self.weight(),
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
        )


class WeightNormConvTranspose1d(_WeightNormConv):
    """ConvTranspose1d with weight norm: weight_v (in, out, k), weight_g (in, 1, 1) per input.

    (B, in, L) -> (B, out, L_out) as `torch.nn.ConvTranspose1d` with the same arguments.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int
    ) -> None:
        super().__init__(
            (in_channels, out_channels, kernel_size), out_channels, in_channels * kernel_size, True
        )
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose1d(x, self.weight(), self.bias, self.stride, self.padding)


class SnakeBeta(nn.Module):
    """Per-channel x + 1/(e^β + 1e-9)·sin²(e^α·x) with log-scale α, β (C,); (B,C,T)->(B,C,T)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        alpha = self.alpha.exp()[None, :, None]
        beta = self.beta.exp()[None, :, None]
        return x + torch.sin(alpha * x).pow(2) / (beta + 1e-9)


class ResidualUnit(nn.Module):
    """x + conv1x1(snake(conv_k7_dilated(snake(x)))); (B,C,T)->(B,C,T)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            SnakeBeta(channels),
            WeightNormConv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation),
            SnakeBeta(channels),
            WeightNormConv1d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x)


class EncoderBlock(nn.Module):
    """Residual units (dilations 1, 3, 9), snake, strided conv; (B,Cin,L)->(B,Cout,L/stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            ResidualUnit(in_channels, 1),
            ResidualUnit(in_channels, 3),
            ResidualUnit(in_channels, 9),
            SnakeBeta(in_channels),
            WeightNormConv1d(
                in_channels, out_channels, 2 * stride, stride=stride, padding=-(-stride // 2)
            ),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    """Snake, transposed conv, residual units (1, 3, 9); (B,Cin,L)->(B,Cout,L·stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            SnakeBeta(in_channels),
            WeightNormConvTranspose1d(
                in_channels, out_channels, 2 * stride, stride=stride, padding=-(-stride // 2)
            ),
            ResidualUnit(out_channels, 1),
            ResidualUnit(out_channels, 3),
            ResidualUnit(out_channels, 9),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class OobleckEncoder(nn.Module):
    """Waveform (B, audio_channels, S) -> (B, 2·latent_dim, S/downsampling): mean ‖ scale."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        widths = [config.channels * m for m in (1, *config.c_mults)]
        blocks = [
            EncoderBlock(widths[i], widths[i + 1], stride)
            for i, stride in enumerate(config.strides)
        ]
        self.layers = nn.Sequential(
            WeightNormConv1d(config.audio_channels, widths[0], 7, padding=3),
            *blocks,
            SnakeBeta(widths[-1]),
            WeightNormConv1d(widths[-1], 2 * config.latent_dim, 3, padding=1),
        )

    def forward(self, wav: Tensor) -> Tensor:
        return self.layers(wav)


class OobleckDecoder(nn.Module):
    """Latents (B, latent_dim, T) -> waveform (B, audio_channels, T·downsampling), no tanh."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        widths = [config.channels * m for m in (1, *config.c_mults)]
        blocks = [
            DecoderBlock(widths[i + 1], widths[i], config.strides[i])
            for i in reversed(range(len(config.strides)))
        ]
        self.layers = nn.Sequential(
            WeightNormConv1d(config.latent_dim, widths[-1], 7, padding=3),
            *blocks,
            SnakeBeta(widths[0]),
            WeightNormConv1d(widths[0], config.audio_channels, 7, padding=3, bias=False),
        )

    def forward(self, latents: Tensor) -> Tensor:
        return self.layers(latents)


class OobleckVAE(VariationalCodec):
    """Oobleck encoder + VAE bottleneck + decoder; latent scale 1.0 (as the released model)."""

    kind = "oobleck"

    def __init__(self, config: CodecConfig) -> None:
        self.check_kind(config)
        odd = [s for s in config.strides if s % 2]
        if odd:
            raise ValueError(f"Oobleck strides must be even (exact length scaling), got {odd}")
        super().__init__(config, OobleckEncoder(config), OobleckDecoder(config))

    def decode_chunked(
        self, latents: Tensor, chunk_frames: int = 128, overlap_frames: int = 16
    ) -> Tensor:
        """(B,D,T) -> (B,C,T·ds) decoding windows of ≤ chunk_frames + 2·overlap_frames frames.

        Each chunk is decoded with `overlap_frames` of context on both sides and only its centre
        is kept; with overlap ≥ the decoder's receptive radius (≈10 frames for the presets) the
        result equals `decode` up to float rounding.
        """
        return decode_in_chunks(
            self.decode,
            latents,
            self.config.downsampling,
            self.config.audio_channels,
            chunk_frames,
            overlap_frames,
        )


def load_oobleck_checkpoint(path: str | os.PathLike[str], config: CodecConfig) -> OobleckVAE:
    """An OobleckVAE with weights from `path`: official `vae.ckpt` ({"state_dict": ...}, read
    with weights_only) or a safetensors file with the same unprefixed keys; strict."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: codec checkpoint not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot read codec checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: not a state dict ({type(state).__name__})")
    vae = OobleckVAE(config)
    try:
        vae.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        if len(detail) > 160:
            detail = detail[:157] + "..."
        raise ModelLoadError(f"{path}: weights do not match the codec config ({detail})") from None
    return vae
