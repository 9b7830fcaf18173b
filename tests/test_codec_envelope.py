"""Temporal envelope restoration in the log-mel codec's decoder: frame energies against a float64
reference, gap closing, the gain's rise where the frames put an onset, onsets that come back on
time with no energy ahead of them, stationary sounds and short gaps left alone, attenuation only,
non-finite items, odd geometries and stereo."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from audiox_turbo.codec import LogMelCodec
from audiox_turbo.codec.envelope import _block, close_gaps, frame_energies, restore_envelope
from audiox_turbo.codec.spectral import stft_same
from audiox_turbo.config import preset
from audiox_turbo.data.world.measure import detect_onsets

DEMO_MEL = preset("demo").codec
RATE = DEMO_MEL.sample_rate

pytestmark = pytest.mark.usefixtures("one_thread")


def _round_trip(codec: LogMelCodec, wave: torch.Tensor, iterations: int) -> torch.Tensor:
    codec.decoder.envelope_iterations = iterations
    latents = codec.encode(wave[None, None], sample=False)
    return codec.decode(latents)[0, 0, : len(wave)]


def _bursts(starts: list[float], length: float, seconds: float = 2.0) -> torch.Tensor:
    """Decaying 300–3000 Hz tone clusters starting at `starts` (s), silence elsewhere."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    wave = torch.zeros_like(t)
    for start in starts:
        on = (t >= start) & (t < start + length)
        local = (t - start).clamp_min(0)
        for f in torch.linspace(300, 3000, 7):
            phase = float(torch.rand(1, generator=g)) * 2 * math.pi
            wave += on * torch.exp(-local / 0.15) * torch.sin(2 * math.pi * f * local + phase)
    return (0.1 * wave).float()


def _energy(wave: torch.Tensor, start: float, stop: float) -> float:
    return float(wave[int(start * RATE) : int(stop * RATE)].double().square().sum())


def test_frame_energies_are_the_windowed_energies_by_parseval() -> None:
    g = torch.Generator().manual_seed(1)
    wave = torch.randn(2, 64 * 40, generator=g)
    window = torch.hann_window(256)
    energies = frame_energies(stft_same(wave, 256, 64, window).abs(), 256)
    padded = np.pad(wave.double().numpy(), ((0, 0), (96, 96)))
    w = window.double().numpy()
    reference = np.stack(
        [[np.sum((row[f * 64 : f * 64 + 256] * w) ** 2) for f in range(40)] for row in padded]
    )
    np.testing.assert_allclose(energies.double().numpy(), reference, rtol=1e-4)


def test_closing_fills_narrow_dips_and_keeps_steps_and_wide_dips() -> None:
    level = torch.tensor([[1.0] * 6 + [1e-4] * 3 + [1.0] * 6 + [1e-4] * 7 + [10.0] * 6])
    closed = close_gaps(level, 5)
    assert torch.allclose(closed[0, 6:9], torch.ones(3))  # 3-frame dip < 5: filled
    assert torch.allclose(closed[0, 15:22], level[0, 15:22])  # 7-frame dip: kept
    assert torch.allclose(closed[0, 22:], level[0, 22:])  # the step up: kept
    assert torch.equal(close_gaps(level, 1), level)
    with pytest.raises(ValueError, match="odd width, got 4"):
        close_gaps(level, 4)
    edge = torch.tensor([[1e-4] * 4 + [1.0] * 12, [1e-4] * 5 + [1.0] * 11])
    closed = close_gaps(edge, 9)
    assert torch.allclose(closed[0], torch.ones(16))  # 4 frames at the start: filled
    assert torch.allclose(closed[1], edge[1])  # 5 > 9 // 2: kept


def test_an_onset_after_silence_comes_back_on_time_without_energy_ahead_of_it() -> None:
    codec = LogMelCodec(DEMO_MEL)
    onset = 0.8203125  # between frame centres
    wave = _bursts([onset], length=0.5)
    smeared = _round_trip(codec, wave, iterations=0)
    restored = _round_trip(codec, wave, iterations=30)
    after = _energy(restored, onset, onset + 0.1)
    assert _energy(restored, onset - 0.03, onset - 0.01) < 1e-3 * after
    assert _energy(smeared, onset - 0.03, onset - 0.01) > 1e-2 * after  # what it removes
    head = (onset, onset + 0.01)
    assert _energy(restored, *head) > 0.9 * _energy(smeared, *head)  # the attack itself is kept
    detected = detect_onsets(restored.numpy(), RATE)
    assert len(detected) == 1 and abs(detected[0] - onset) < 0.015
    assert abs(detect_onsets(smeared.numpy(), RATE)[0] - onset) > 0.025


@pytest.mark.parametrize("n_fft, hop", [(1024, 256), (256, 64), (400, 100), (30, 10)])
def test_the_gain_rises_where_the_frames_put_the_onset(n_fft: int, hop: int) -> None:
    g = torch.Generator().manual_seed(4)
    frames = 40
    noise = torch.randn(1, frames * hop, generator=g)
    block = _block(n_fft, hop)
    for n0 in (frames * hop // 2, frames * hop // 2 + hop // 3, frames * hop // 2 + hop // 2):
        window = torch.hann_window(n_fft)
        switched_on = noise * (torch.arange(frames * hop) >= n0)
        magnitude = stft_same(switched_on, n_fft, hop, window).abs()
        gain = restore_envelope(noise, magnitude, n_fft, hop, window, iterations=30) / noise
        half = int((gain[0] >= 0.5).nonzero()[0]) - n0  # 1–2 blocks early at 30 updates
        assert -2 * block - 4 <= half <= block
        assert float(gain[0, : n0 - n_fft // 4 - block].abs().max()) < 0.1


def test_a_non_finite_item_is_left_alone_and_does_not_spread() -> None:
    g = torch.Generator().manual_seed(5)
    wave = torch.randn(2, 64 * 20, generator=g)
    magnitude = torch.rand(2, 129, 20, generator=g)
    wave[1, 100] = float("nan")
    out = restore_envelope(wave, magnitude, 256, 64, torch.hann_window(256), iterations=10)
    assert bool(torch.isfinite(out[0]).all())
    assert torch.equal(out[1].isnan(), wave[1].isnan())
    assert torch.equal(torch.nan_to_num(out[1]), torch.nan_to_num(wave[1]))


def test_a_steady_sound_and_a_short_gap_keep_the_stationary_synthesis() -> None:
    codec = LogMelCodec(DEMO_MEL)
    n = torch.arange(2 * RATE, dtype=torch.float64)
    tone = (0.2 * torch.sin(2 * math.pi * 440 * n / RATE)).float()
    restored, smeared = _round_trip(codec, tone, 30), _round_trip(codec, tone, 0)
    middle = slice(RATE // 4, -RATE // 4)
    assert _energy(restored[middle], 0, 1.5) > 0.97 * _energy(smeared[middle], 0, 1.5)
    gap = _bursts([0.5, 0.86], length=0.3)  # a 60 ms gap: shorter than the closing's 9 frames
    in_gap = (0.81, 0.855)
    smeared_gap = _energy(_round_trip(codec, gap, 0), *in_gap)
    codec.decoder.envelope_gap_frames = 9
    assert _energy(_round_trip(codec, gap, 30), *in_gap) > 0.5 * smeared_gap
    codec.decoder.envelope_gap_frames = 1
    assert _energy(_round_trip(codec, gap, 30), *in_gap) < 0.2 * smeared_gap


def test_restoration_only_attenuates_and_keeps_shapes_for_odd_geometries() -> None:
    g = torch.Generator().manual_seed(3)
    for n_fft, hop in ((1024, 256), (256, 64), (400, 100), (30, 10)):
        frames = 12
        wave = torch.randn(3, frames * hop, generator=g)
        loud = 1 + 30 * (torch.arange(frames) >= frames // 2)  # frames louder than the wave
        magnitude = torch.rand(3, n_fft // 2 + 1, frames, generator=g) * loud
        window = torch.hann_window(n_fft)
        out = restore_envelope(wave, magnitude, n_fft, hop, window, iterations=10, gap_frames=3)
        assert out.shape == wave.shape and out.dtype == wave.dtype
        assert bool(torch.isfinite(out).all())
        assert bool((out.abs() <= wave.abs() * (1 + 1e-5)).all())
        assert bool((out.abs() < wave.abs() * 0.9).any())


def test_stereo_decoding_restores_each_channel_alone() -> None:
    codec = LogMelCodec(dataclasses.replace(DEMO_MEL, audio_channels=2, latent_dim=320))
    left, right = _bursts([0.5], 0.3), _bursts([1.2], 0.3)
    stereo = torch.stack([left, right])[None]
    out = codec.decode(codec.encode(stereo, sample=False))[0, :, : left.shape[-1]]
    for channel, onset in ((0, 0.5), (1, 1.2)):
        detected = detect_onsets(out[channel].numpy(), RATE)
        assert len(detected) == 1 and abs(detected[0] - onset) < 0.015
