"""Synthesised instrument timbres: each renders one note (freq Hz, held seconds) to a 1-D array."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

from audiox_turbo.data.world.synth import (
    adsr,
    band_noise,
    bandpass,
    exp_decay,
    n_samples,
    partials,
    time_axis,
)

NoteRenderer = Callable[[float, float, float, int, np.random.Generator], np.ndarray]


def pluck(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Karplus-Strong plucked string: a noise burst circulating in a damped averaging delay line."""
    period = max(2, round(sample_rate / freq))
    n = n_samples(held + 0.3, sample_rate)
    burst = np.zeros(n)
    burst[:period] = rng.uniform(-1.0, 1.0, min(period, n))
    loss = 0.996
    feedback = np.zeros(period + 2)
    feedback[0] = 1.0
    feedback[period] = -0.5 * loss
    feedback[period + 1] = -0.5 * loss
    y = signal.lfilter([1.0], feedback, burst)
    return velocity * y * adsr(n, sample_rate, 0.001, 0.0, 1.0, 0.3)


def piano(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Piano-like: slightly inharmonic partials with faster decay higher up, plus a hammer knock."""
    n = n_samples(held + 0.4, sample_rate)
    k = np.arange(1, 9)
    freqs = freq * k * np.sqrt(1.0 + 4e-4 * k**2)
    amps = 0.6 ** (k - 1) * (0.5 + 0.5 * velocity)
    taus = 1.2 / (1.0 + 0.6 * k) * (261.6 / freq) ** 0.3
    tone = partials(freqs, amps, taus, n, sample_rate)
    knock = band_noise(rng, n, sample_rate, 1000.0, 4000.0) * exp_decay(n, sample_rate, 0.004)
    return velocity * (tone + 0.3 * knock) * adsr(n, sample_rate, 0.002, 0.0, 1.0, 0.4)


def organ(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Drawbar organ: steady harmonics 1, 2, 3, 4, 6, 8 with a gentle tremolo, no decay."""
    n = n_samples(held + 0.08, sample_rate)
    t = time_axis(n, sample_rate)
    tone = np.zeros(n)
    for k, a in ((1, 1.0), (2, 0.7), (3, 0.45), (4, 0.35), (6, 0.2), (8, 0.15)):
        if k * freq < 0.45 * sample_rate:
            tone += a * np.sin(2 * np.pi * k * freq * t)
    tremolo = 1.0 + 0.08 * np.sin(2 * np.pi * 6.0 * t)
    return 0.4 * velocity * tone * tremolo * adsr(n, sample_rate, 0.006, 0.03, 0.85, 0.08)


def bowed_string(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Bowed string: band-limited sawtooth with delayed vibrato and a body resonance."""
    n = n_samples(held + 0.15, sample_rate)
    t = time_axis(n, sample_rate)
    vibrato = 1.0 + 0.006 * np.sin(2 * np.pi * 5.5 * t) * np.clip(t / 0.3, 0.0, 1.0)
    phase = 2 * np.pi * freq * np.cumsum(vibrato) / sample_rate
    tone = np.zeros(n)
    for k in range(1, 16):
        if k * freq >= 0.45 * sample_rate:
            break
        tone += np.sin(k * phase) / k
    tone = bandpass(tone, sample_rate, 200.0, 4000.0)
    bow = 0.02 * band_noise(rng, n, sample_rate, 2000.0, None)
    return 0.7 * velocity * (tone + bow) * adsr(n, sample_rate, 0.04, 0.1, 0.8, 0.15)


def brass(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Brass-like: harmonics whose brightness follows the envelope (upper ones swell in later)."""
    n = n_samples(held + 0.1, sample_rate)
    t = time_axis(n, sample_rate)
    env = adsr(n, sample_rate, 0.03, 0.08, 0.75, 0.1)
    tone = np.zeros(n)
    for k in range(1, 13):
        if k * freq >= 0.45 * sample_rate:
            break
        tone += env ** (1.0 + 0.5 * k) * np.sin(2 * np.pi * k * freq * t) / k**0.5
    return 0.35 * velocity * tone


def bell(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Bell: inharmonic partial ratios (Risset's additive bell) with long, unequal decays."""
    n = n_samples(max(held, 1.2), sample_rate)
    ratios = np.array([0.56, 0.92, 1.19, 1.71, 2.0, 2.74, 3.0, 3.76, 4.07])
    amps = np.array([1.0, 0.67, 1.0, 1.8, 2.67, 1.67, 1.46, 1.33, 1.33]) / 4.0
    taus = np.array([1.0, 0.8, 0.5, 0.45, 0.35, 0.3, 0.25, 0.2, 0.18]) * 1.2
    return 0.6 * velocity * partials(freq * ratios, amps, taus, n, sample_rate)


def bass(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Electric-bass-like: low-passed sawtooth with a plucked envelope."""
    n = n_samples(held + 0.1, sample_rate)
    t = time_axis(n, sample_rate)
    saw = 2.0 * ((freq * t) % 1.0) - 1.0
    tone = bandpass(saw, sample_rate, None, 4.0 * freq)
    env = exp_decay(n, sample_rate, 0.6, 0.003) * adsr(n, sample_rate, 0.001, 0.0, 1.0, 0.1)
    return 0.9 * velocity * tone * env


def marimba(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Marimba-like: a fundamental and the bar's 4th and ~10th partials, short decay."""
    n = n_samples(0.6, sample_rate)
    return velocity * partials(
        freq * np.array([1.0, 3.93, 9.2]),
        np.array([1.0, 0.35, 0.1]),
        np.array([0.25, 0.08, 0.03]),
        n,
        sample_rate,
    )


def flute(
    freq: float, held: float, velocity: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Flute-like: near-sinusoid with weak harmonics and band-passed breath noise."""
    n = n_samples(held + 0.08, sample_rate)
    t = time_axis(n, sample_rate)
    tone = np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(4 * np.pi * freq * t)
    breath = 0.15 * band_noise(rng, n, sample_rate, 0.8 * freq, 3.0 * freq)
    return 0.6 * velocity * (tone + breath) * adsr(n, sample_rate, 0.03, 0.05, 0.8, 0.08)


def kick(velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Kick drum: sine sweeping 150 → 50 Hz with a fast decay."""
    n = n_samples(0.35, sample_rate)
    t = time_axis(n, sample_rate)
    freq = 50.0 + 100.0 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    click = band_noise(rng, n, sample_rate, 1500.0, None) * exp_decay(n, sample_rate, 0.002)
    return velocity * (np.sin(phase) * exp_decay(n, sample_rate, 0.12, 0.001) + 0.2 * click)


def snare(velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Snare drum: a 190 Hz body plus band-passed noise rattle."""
    n = n_samples(0.25, sample_rate)
    t = time_axis(n, sample_rate)
    body = np.sin(2 * np.pi * 190.0 * t) * exp_decay(n, sample_rate, 0.05, 0.001)
    rattle = band_noise(rng, n, sample_rate, 1500.0, 6000.0) * exp_decay(n, sample_rate, 0.07)
    return 0.8 * velocity * (0.6 * body + 1.2 * rattle)


def hihat(velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Closed hi-hat: short high-passed noise."""
    n = n_samples(0.08, sample_rate)
    noise = band_noise(rng, n, sample_rate, 0.4 * sample_rate * 0.5, None)
    return 0.5 * velocity * noise * exp_decay(n, sample_rate, 0.015, 0.0005)


PITCHED: dict[str, NoteRenderer] = {
    "plucked string": pluck,
    "piano": piano,
    "organ": organ,
    "strings": bowed_string,
    "brass": brass,
    "bell": bell,
    "bass": bass,
    "marimba": marimba,
    "flute": flute,
}
"""Pitched timbres by the name used in labels and captions."""

LEAD_INSTRUMENTS = tuple(name for name in PITCHED if name != "bass")
"""Timbres that may carry a melody, chords or an arpeggio."""

DRUM_KIT = "drum kit"
DRUM_PARTS: dict[str, Callable[[float, int, np.random.Generator], np.ndarray]] = {
    "kick": kick,
    "snare": snare,
    "hihat": hihat,
}
"""The drum kit's pieces, rendered as one hit each."""
