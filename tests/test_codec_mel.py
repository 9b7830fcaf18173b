"""The log-mel codec: its latents against a float64 log-mel reference (frame stacking order
included), standardisation by fitted band statistics, the deconvolution back to magnitudes,
pitch and silence through a round trip, model dir round trip, bad configs, and the recipe's
codec and latent stages with it."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from audiox_turbo.codec import LogMelCodec, build_codec
from audiox_turbo.codec.mel import _bands, mel_to_magnitude, stack_frames, unstack_frames
from audiox_turbo.config import CodecConfig, ModelConfig, from_dict, preset
from audiox_turbo.mel import mel_filterbank
from audiox_turbo.model_dir import load_native_components, native_components, save_model_dir

TINY_MEL = CodecConfig(
    kind="mel",
    sample_rate=16000,
    audio_channels=1,
    latent_dim=32,
    n_fft=256,
    hop_length=64,
    frames_per_latent=2,
    n_mels=16,
    encoder_floor=1e-3,
)
MODEL = dataclasses.replace(preset("tiny"), codec=TINY_MEL)


pytestmark = pytest.mark.usefixtures("one_thread")


def _tone(frequency: float, seconds: float, rate: int = 16000) -> torch.Tensor:
    n = torch.arange(int(seconds * rate), dtype=torch.float64)
    wave = sum(torch.cos(2 * math.pi * h * frequency * n / rate + h) / h for h in (1, 2, 3))
    return (0.25 * wave).float()


def _reference_log_mel(wav: np.ndarray, config: CodecConfig) -> np.ndarray:
    """float64 log(mel + floor) (n_mels, frames) of a mono wave, STFT by explicit framing."""
    n_fft, hop = config.n_fft, config.hop_length
    pad = (n_fft - hop) // 2
    padded = np.pad(wav.astype(np.float64), (pad, pad))
    frames = len(wav) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    spec = np.stack(
        [np.fft.rfft(padded[f * hop : f * hop + n_fft] * window) for f in range(frames)]
    )
    mel = np.abs(spec) @ mel_filterbank(config.sample_rate, n_fft, config.n_mels)
    return np.log(mel + config.encoder_floor).T


def test_latents_are_the_log_mel_bands_stacked_two_frames_per_latent() -> None:
    codec = LogMelCodec(TINY_MEL)
    g = torch.Generator().manual_seed(0)
    wav = 0.3 * torch.randn(2, 1, 40 * 128, generator=g)
    latents = codec.encode(wav, sample=False)
    assert latents.shape == (2, 32, 40)
    for b in range(2):
        reference = _reference_log_mel(wav[b, 0].numpy(), TINY_MEL)  # (16, 80)
        expected = np.concatenate([reference[:, 0::2], reference[:, 1::2]], axis=0)
        np.testing.assert_allclose(latents[b].numpy(), expected, rtol=0, atol=2e-4)


def test_stacking_round_trips_for_stereo() -> None:
    x = torch.randn(2 * 2, 5, 12)
    stacked = stack_frames(x, channels=2, k=3)
    assert stacked.shape == (2, 2 * 3 * 5, 4)
    assert torch.equal(stacked[1, 3 * 5 + 5 : 3 * 5 + 10, 2], x[3, :, 2 * 3 + 1])
    assert torch.equal(unstack_frames(stacked, channels=2, k=3), x)


def test_fitted_statistics_standardise_each_band_and_ignore_padding() -> None:
    codec = LogMelCodec(TINY_MEL)
    g = torch.Generator().manual_seed(1)
    loud = torch.randn(4, 1, 64 * 64, generator=g) * torch.linspace(0.01, 1, 4)[:, None, None]
    padded = torch.cat([loud, torch.zeros(4, 1, 64 * 64)], -1)
    mask = torch.cat([torch.ones(4, 64 * 64), torch.zeros(4, 64 * 64)], -1).bool()
    codec.fit_band_statistics(padded, mask)
    latents = codec.encode(loud, sample=False)
    bands = unstack_frames(latents, 1, 2)[..., 2:-2]  # frames whose window is all audio
    per_band = bands.transpose(0, 1).reshape(16, -1)
    assert per_band.mean(1).abs().max() < 0.05
    assert (per_band.std(1) - 1).abs().max() < 0.05
    with pytest.raises(ValueError, match="no valid audio frames"):
        codec.fit_band_statistics(padded, torch.zeros_like(mask))


def test_deconvolution_keeps_the_band_sums_and_beats_the_pseudo_inverse() -> None:
    weights, inverse = _bands(16000, 256, 16)
    g = torch.Generator().manual_seed(2)
    spec = torch.stft(
        torch.randn(1, 4096, generator=g),
        256,
        64,
        window=torch.hann_window(256),
        return_complex=True,
    )
    magnitude = spec.abs()
    mel = torch.einsum("km,nkf->nmf", weights, magnitude)

    def band_error(estimate: torch.Tensor) -> float:
        rebuilt = torch.einsum("km,nkf->nmf", weights, estimate)
        return float(((rebuilt - mel).abs() / mel).mean())

    pseudo_inverse = mel_to_magnitude(mel, weights, inverse, iterations=0)
    deconvolved = mel_to_magnitude(mel, weights, inverse, iterations=30)
    assert bool((deconvolved > 0).all())
    assert band_error(deconvolved) < 0.05
    assert band_error(deconvolved) < 0.5 * band_error(pseudo_inverse)


@pytest.mark.parametrize("frequency", [196.0, 261.63, 466.16, 880.0])
def test_a_tone_comes_back_at_its_pitch_and_level(frequency: float) -> None:
    config = dataclasses.replace(TINY_MEL, n_fft=1024, hop_length=256, n_mels=80, latent_dim=160)
    codec = LogMelCodec(config)
    tone = _tone(frequency, 1.5)
    out = codec.decode(codec.encode(tone[None, None], sample=False))[0, 0, : len(tone)]
    middle = slice(4000, -4000)
    spectrum = torch.fft.rfft(out[middle].double() * torch.hann_window(len(out[middle])), n=2**17)
    peak = float(spectrum.abs().argmax()) * 16000 / 2**17
    assert abs(1200 * math.log2(peak / frequency)) < 25
    rms_in, rms_out = tone[middle].pow(2).mean().sqrt(), out[middle].pow(2).mean().sqrt()
    assert abs(float(rms_out / rms_in) - 1) < 0.15


def test_silence_decodes_to_silence_and_shapes_are_exact() -> None:
    codec = LogMelCodec(TINY_MEL)
    silence = torch.zeros(1, 1, 1000)
    latents = codec.encode(silence, sample=False)
    assert latents.shape == (1, 32, 8)  # ceil(1000 / 128)
    out = codec.decode(latents)
    assert out.shape == (1, 1, 8 * 128)
    assert float(out.abs().max()) < 1e-4
    assert torch.equal(codec.decode_chunked(latents, chunk_frames=3), out)


def test_latent_scale_multiplies_on_encode_and_divides_on_decode() -> None:
    g = torch.Generator().manual_seed(3)
    wav = 0.2 * torch.randn(1, 1, 2048, generator=g)
    plain = LogMelCodec(TINY_MEL)
    scaled = LogMelCodec(dataclasses.replace(TINY_MEL, latent_scale=2.0))
    z = plain.encode(wav, sample=False)
    torch.testing.assert_close(scaled.encode(wav, sample=False), 2 * z)
    torch.testing.assert_close(scaled.decode(2 * z), plain.decode(z))


def test_model_dir_round_trip_keeps_the_band_statistics(tmp_path: Path) -> None:
    components = native_components(MODEL, seed=0)
    codec = components["codec"]
    assert isinstance(codec, LogMelCodec) and build_codec(TINY_MEL).kind == "mel"
    g = torch.Generator().manual_seed(4)
    wav = 0.1 * torch.randn(3, 1, 4096, generator=g)
    codec.fit_band_statistics(wav)
    save_model_dir(tmp_path / "m", MODEL, components)
    _, loaded = load_native_components(tmp_path / "m")
    torch.testing.assert_close(loaded["codec"].band_mean, codec.band_mean)
    torch.testing.assert_close(
        loaded["codec"].encode(wav, sample=False), codec.encode(wav, sample=False)
    )


@pytest.mark.parametrize(
    ("codec", "message"),
    [
        ({"kind": "mel", "n_mels": 80, "latent_dim": 64}, "latent_dim: a mel codec's is"),
        ({"kind": "mel", "n_mels": 0}, "n_mels: must be >= 1"),
        ({"kind": "mel", "n_fft": 256, "hop_length": 256}, "n_fft: must be even"),
    ],
)
def test_bad_mel_config_is_one_line_error(codec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        from_dict(ModelConfig, {"codec": codec})
    assert "\n" not in str(info.value)


def test_the_recipe_measures_the_codec_and_caches_its_latents(tmp_path: Path) -> None:
    from audiox_turbo.recipe import Recipe, tiny_recipe

    config = dataclasses.replace(tiny_recipe(), model=MODEL)
    Recipe(config, tmp_path).run(until="teacher")
    codec_config, modules = load_native_components(tmp_path / "codec" / "model")
    assert codec_config.codec.kind == "mel" and codec_config.codec.latent_scale == 1.0
    assert float(modules["codec"].band_std.sub(1).abs().max()) > 0.1  # measured, not defaults
    index = json.loads((tmp_path / "latents" / "index.json").read_text())
    assert index["kind"] == "latents"
    teacher_config, _ = load_native_components(tmp_path / "teacher" / "model")
    assert teacher_config.codec == codec_config.codec
