"""The iSTFT VAE: a codec whose networks run at the STFT frame rate (Vocos-style).

Encoder: log-magnitude STFT frames -> ConvNeXt blocks -> a strided conv to the latent rate ->
mean ‖ scale. Decoder: latents -> transposed conv to the frame rate -> ConvNeXt blocks -> a
linear head predicting log-magnitude and phase per bin -> inverse STFT ("same" padding, so
T latent frames decode to exactly T·hop·frames_per_latent samples). Same bottleneck, KL and
interface as `OobleckVAE` (`VariationalCodec`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.codec.bottleneck import VariationalCodec, decode_in_chunks
from audiox_turbo.codec.spectral import istft_same, peak_locked_phase, stft_same
from audiox_turbo.config import CodecConfig

_MAX_MAGNITUDE = 100.0


def _window(n_fft: int, like: Tensor) -> Tensor:
    """Periodic Hann window (n_fft,) in float32 on `like`'s device (built per call: no buffer,
    so a codec materialised from the meta device needs nothing but its state dict)."""
    return torch.hann_window(n_fft, device=like.device)


class ConvNeXtBlock(nn.Module):
    """x + γ·Linear(GELU(Linear(LayerNorm(depthwise_conv7(x))))); (B,C,T)->(B,C,T)."""

    def __init__(self, dim: int, hidden: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.expand = nn.Linear(dim, hidden)
        self.project = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        h = self.depthwise(x).transpose(1, 2)
        h = self.project(F.gelu(self.expand(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class ConvNeXtStack(nn.Module):
    """Conv7 stem, LayerNorm, `layers` ConvNeXt blocks, LayerNorm; (B,Cin,T)->(B,T,dim)."""

    def __init__(self, in_channels: int, dim: int, layers: int) -> None:
        super().__init__()
        self.stem = nn.Conv1d(in_channels, dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, 3 * dim, 1.0 / layers) for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm_in(self.stem(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        return self.norm_out(h.transpose(1, 2))


class IstftEncoder(nn.Module):
    """Waveform (B, C, F·hop) -> (B, 2·latent_dim, F / frames_per_latent): mean ‖ scale."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        bins = config.n_fft // 2 + 1
        self.stack = ConvNeXtStack(
            config.audio_channels * bins, config.channels, config.encoder_layers
        )
        k = config.frames_per_latent
        self.to_stats = nn.Conv1d(config.channels, 2 * config.latent_dim, k, stride=k)

    def forward(self, wav: Tensor) -> Tensor:
        b, c, length = wav.shape
        cfg = self.config
        spec = stft_same(
            wav.reshape(b * c, length).float(), cfg.n_fft, cfg.hop_length, _window(cfg.n_fft, wav)
        )
        features = spec.abs().clamp_min(cfg.encoder_floor).log().to(wav.dtype)
        features = features.reshape(b, -1, features.shape[-1])
        return self.to_stats(self.stack(features).transpose(1, 2))


class IstftDecoder(nn.Module):
    """Latents (B, latent_dim, T) -> waveform (B, C, T·frames_per_latent·hop), no tanh.

    Per STFT frame t and bin k the head predicts a log-magnitude and, with `istft_phase`
    "learned", a phase advance δ and offset ψ: φ_t = Σ_{s≤t} (ω_k·hop + δ_s) + ψ_t (ω_k the
    bin's centre frequency), a phase vocoder's integration that can express any signal.
    With "locked" the phase is computed from the magnitudes (`peak_locked_phase`, no
    gradient), so only magnitudes are learned: a codec that trains in minutes on a CPU,
    since phase learned without an adversary drifts and cancels in the overlap-add.
    (Predicting the phase itself, as Vocos, cannot make a steady tone between bin centres:
    identical frames in give identical frames out.)
    """

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        k = config.frames_per_latent
        self.bins = config.n_fft // 2 + 1
        self.rows = 1 if config.istft_phase == "locked" else 3
        self.upsample = nn.ConvTranspose1d(config.latent_dim, config.channels, k, stride=k)
        self.stack = ConvNeXtStack(config.channels, config.channels, config.decoder_layers)
        self.head = nn.Linear(config.channels, config.audio_channels * self.rows * self.bins)
        if self.rows == 3:
            self._start_as_oscillator_bank()

    @property
    def parameters_per_frame(self) -> int:
        """Head outputs per STFT frame: C·bins (locked) or C·3·bins (learned)."""
        return self.config.audio_channels * self.rows * self.bins

    def _start_as_oscillator_bank(self) -> None:
        """Zero the head's phase rows (δ, ψ): at initialisation every bin is a sinusoid at its
        centre frequency, coherent across overlapping frames."""
        rows = self.head.weight.view(self.config.audio_channels, 3, self.bins, -1)
        bias = self.head.bias.view(self.config.audio_channels, 3, self.bins)
        with torch.no_grad():
            rows[:, 1:].zero_()
            bias[:, 1:].zero_()

    def frame_parameters(self, latents: Tensor) -> Tensor:
        """(B, latent_dim, T) -> (B, parameters_per_frame, T·frames_per_latent): log|X| (‖ δ ‖ ψ)
        per channel; frame-local (a receptive field of 3·(decoder_layers + 1) frames each side)."""
        return self.head(self.stack(self.upsample(latents))).transpose(1, 2)

    def synthesise(self, parameters: Tensor) -> Tensor:
        """(B, parameters_per_frame, F) -> waveform (B, C, F·hop): phase integration over all F
        frames (float64) and the inverse STFT."""
        cfg = self.config
        b, _, frames = parameters.shape
        out = parameters.float().reshape(b * cfg.audio_channels, self.rows, self.bins, frames)
        log_magnitude = out[:, 0]
        if self.rows == 1:
            with torch.no_grad():
                phase = peak_locked_phase(log_magnitude, cfg.n_fft, cfg.hop_length).float()
        else:
            advance, offset = out[:, 1], out[:, 2]
            centre = torch.arange(self.bins, device=out.device, dtype=torch.float64)
            centre = (2 * torch.pi * cfg.hop_length / cfg.n_fft) * centre[:, None]
            phase = torch.cumsum(advance.double() + centre, dim=-1).remainder(2 * torch.pi)
            phase = phase.float() + offset
        magnitude = log_magnitude.exp().clamp(max=_MAX_MAGNITUDE)
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        wav = istft_same(spec, cfg.n_fft, cfg.hop_length, _window(cfg.n_fft, magnitude))
        return wav.reshape(b, cfg.audio_channels, -1).to(parameters.dtype)

    def forward(self, latents: Tensor) -> Tensor:
        return self.synthesise(self.frame_parameters(latents))


class IstftVAE(VariationalCodec):
    """iSTFT encoder + VAE bottleneck + iSTFT decoder."""

    kind = "istft"

    def __init__(self, config: CodecConfig) -> None:
        self.check_kind(config)
        super().__init__(config, IstftEncoder(config), IstftDecoder(config))

    def decode_chunked(
        self, latents: Tensor, chunk_frames: int = 128, overlap_frames: int = 16
    ) -> Tensor:
        """(B,D,T) -> (B,C,T·ds): the frame network runs over windows of ≤ chunk_frames +
        2·overlap_frames latent frames, the phase integration and inverse STFT over the whole;
        equal to `decode` when overlap_frames ≥ (3·(decoder_layers + 1)) / frames_per_latent."""
        decoder = self.decoder
        cfg = self.config
        parameters = decode_in_chunks(
            decoder.frame_parameters,
            latents / cfg.latent_scale,
            cfg.frames_per_latent,
            decoder.parameters_per_frame,
            chunk_frames,
            overlap_frames,
        )
        return decoder.synthesise(parameters)
