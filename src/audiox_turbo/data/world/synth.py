"""Signal building blocks shared by the world's sound sources; all signals are 1-D float64."""

from __future__ import annotations

import numpy as np
from scipy import signal


def n_samples(seconds: float, sample_rate: int) -> int:
    """Number of samples covering `seconds` (rounded to the nearest sample)."""
    return round(seconds * sample_rate)


def midi_to_hz(midi: float) -> float:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def time_axis(n: int, sample_rate: int) -> np.ndarray:
    """Times in seconds of samples 0..n-1, shape (n,)."""
    return np.arange(n) / sample_rate


def adsr(
    n: int, sample_rate: int, attack: float, decay: float, sustain: float, release: float
) -> np.ndarray:
    """Linear attack/decay/sustain envelope of n samples whose last `release` seconds fade out."""
    t = time_axis(n, sample_rate)
    env = np.full(n, sustain, dtype=np.float64)
    a = max(attack, 1e-4)
    env = np.where(t < a, t / a, env)
    in_decay = (t >= a) & (t < a + decay)
    env[in_decay] = 1.0 - (1.0 - sustain) * (t[in_decay] - a) / max(decay, 1e-4)
    n_rel = min(n, n_samples(release, sample_rate))
    if n_rel > 0:
        env[n - n_rel :] *= np.linspace(1.0, 0.0, n_rel)
    return env


def exp_decay(n: int, sample_rate: int, tau: float, attack: float = 0.002) -> np.ndarray:
    """Percussive envelope: linear attack of `attack` s, then exp(-t/tau), shape (n,)."""
    t = time_axis(n, sample_rate)
    rise = np.clip(t / max(attack, 1e-5), 0.0, 1.0)
    return rise * np.exp(-np.maximum(t - attack, 0.0) / tau)


def clamp_hz(freq: np.ndarray | float, sample_rate: int) -> np.ndarray | float:
    """Keep frequencies below 0.45·sample_rate so nothing aliases."""
    return np.minimum(freq, 0.45 * sample_rate)


def partials(
    freqs: np.ndarray, amps: np.ndarray, taus: np.ndarray, n: int, sample_rate: int
) -> np.ndarray:
    """Sum of decaying sinusoids (freq Hz, amplitude, decay s) over n samples; aliasing dropped."""
    t = time_axis(n, sample_rate)
    out = np.zeros(n)
    for f, a, tau in zip(freqs, amps, taus, strict=True):
        if f < 0.45 * sample_rate:
            out += a * np.sin(2 * np.pi * f * t) * np.exp(-t / tau)
    return out


def band_noise(
    rng: np.random.Generator, n: int, sample_rate: int, low: float | None, high: float | None
) -> np.ndarray:
    """White noise through a 2nd-order Butterworth (low/high cut-offs in Hz, None = open)."""
    x = rng.standard_normal(n)
    return bandpass(x, sample_rate, low, high)


def bandpass(x: np.ndarray, sample_rate: int, low: float | None, high: float | None) -> np.ndarray:
    """Filter x with a 2nd-order Butterworth low-, high- or band-pass (cut-offs in Hz)."""
    nyq = 0.5 * sample_rate
    high = None if high is None or high >= 0.95 * nyq else high
    if low is not None and high is not None:
        sos = signal.butter(2, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    elif low is not None:
        sos = signal.butter(2, low, btype="highpass", fs=sample_rate, output="sos")
    elif high is not None:
        sos = signal.butter(2, high, btype="lowpass", fs=sample_rate, output="sos")
    else:
        return x
    return signal.sosfilt(sos, x)


def resonator(x: np.ndarray, sample_rate: int, freq: float, bandwidth: float) -> np.ndarray:
    """Two-pole resonance at `freq` Hz with `bandwidth` Hz, unity gain at the peak."""
    r = np.exp(-np.pi * bandwidth / sample_rate)
    theta = 2 * np.pi * float(clamp_hz(freq, sample_rate)) / sample_rate
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return signal.lfilter([1.0 - r], a, x)


def place(out: np.ndarray, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
    """Add `sound`·gain into `out` starting at sample `start`, cropping at both ends (in place)."""
    if start >= len(out) or start + len(sound) <= 0:
        return
    lo = max(start, 0)
    hi = min(start + len(sound), len(out))
    out[lo:hi] += gain * sound[lo - start : hi - start]


def normalize_peak(x: np.ndarray, peak: float = 0.8) -> np.ndarray:
    """Scale x so max |x| equals `peak` (silence stays silence)."""
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return x if m < 1e-12 else x * (peak / m)


def rms(x: np.ndarray) -> float:
    """Root mean square of x."""
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0
