"""Speech-like voices: formant-synthesised consonant-vowel syllables grouped into words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiox_turbo.data.world.synth import (
    band_noise,
    bandpass,
    exp_decay,
    n_samples,
    normalize_peak,
    place,
    resonator,
)

VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
"""Formants F1-F3 in Hz of adult male vowels (Peterson & Barney 1952 averages)."""

CONSONANTS: dict[str, tuple[str, float, float | None, float]] = {
    "s": ("noise", 4000.0, None, 0.10),
    "sh": ("noise", 1800.0, 4000.0, 0.10),
    "f": ("noise", 1500.0, None, 0.08),
    "p": ("burst", 300.0, 1500.0, 0.015),
    "t": ("burst", 2500.0, None, 0.015),
    "k": ("burst", 1200.0, 3000.0, 0.02),
    "m": ("nasal", 250.0, None, 0.06),
    "n": ("nasal", 300.0, None, 0.06),
    "": ("none", 0.0, None, 0.0),
}
"""Consonants: kind, band edges (Hz) of their noise or nasal formant, and length in seconds."""

TIMBRES: dict[str, tuple[tuple[float, float], float]] = {
    "male-like": ((85.0, 155.0), 1.0),
    "female-like": ((165.0, 255.0), 1.17),
    "child-like": ((250.0, 340.0), 1.3),
}
"""Gender-like timbres: fundamental-frequency range (Hz) and formant scale factor."""


@dataclass(frozen=True)
class Speaker:
    """Speaker traits that label a voice clip."""

    timbre: str
    pitch_hz: float
    rate: float

    def labels(self) -> dict[str, float | str]:
        """JSON-ready traits: timbre, median pitch (Hz) and syllables per second."""
        return {"timbre": self.timbre, "pitch_hz": round(self.pitch_hz, 1), "rate": self.rate}


@dataclass(frozen=True)
class Utterance:
    """A rendered voice: waveform (samples,), syllable onsets (s) and the syllables spoken."""

    audio: np.ndarray
    events: list[float]
    syllables: list[str]
    speaker: Speaker


def draw_speaker(rng: np.random.Generator) -> Speaker:
    """A random speaker: timbre, pitch within the timbre's range, 3-6 syllables per second."""
    timbre = str(rng.choice(list(TIMBRES)))
    (lo, hi), _ = TIMBRES[timbre]
    return Speaker(timbre, float(rng.uniform(lo, hi)), round(float(rng.uniform(3.0, 6.0)), 2))


def _glottal_source(f0: np.ndarray, sample_rate: int) -> np.ndarray:
    """Impulse train at the time-varying f0 (one pulse per period), low-passed for spectral tilt."""
    phase = np.cumsum(f0) / sample_rate
    pulses = np.zeros(len(f0))
    pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
    return bandpass(pulses - pulses.mean(), sample_rate, None, 900.0)


def speak(
    rng: np.random.Generator, duration: float, sample_rate: int, speaker: Speaker | None = None
) -> Utterance:
    """A stream of CV syllables in words of 1-3 syllables, with declining intonation."""
    speaker = speaker or draw_speaker(rng)
    _, scale = TIMBRES[speaker.timbre]
    n = n_samples(duration, sample_rate)
    t_axis = np.arange(n) / sample_rate
    f0 = speaker.pitch_hz * (1.1 - 0.2 * t_axis / duration)
    f0 = f0 * (1.0 + 0.01 * np.sin(2 * np.pi * 4.5 * t_axis))
    source = _glottal_source(f0, sample_rate)
    out = np.zeros(n)
    events: list[float] = []
    syllables: list[str] = []
    t = float(rng.uniform(0.1, 0.3))
    syllable_s = 1.0 / speaker.rate
    while t < duration - syllable_s:
        for _ in range(int(rng.integers(1, 4))):
            if t >= duration - syllable_s:
                break
            consonant = str(rng.choice(list(CONSONANTS)))
            vowel = str(rng.choice(list(VOWELS)))
            start = n_samples(t, sample_rate)
            length = syllable_s * float(rng.uniform(0.85, 1.1))
            _syllable(rng, out, source, start, length, consonant, vowel, scale, sample_rate)
            events.append(start / sample_rate)
            syllables.append(consonant + vowel)
            t += length
        t += float(rng.uniform(0.08, 0.3))
    return Utterance(normalize_peak(out), events, syllables, speaker)


def _syllable(
    rng: np.random.Generator,
    out: np.ndarray,
    source: np.ndarray,
    start: int,
    length: float,
    consonant: str,
    vowel: str,
    scale: float,
    sample_rate: int,
) -> None:
    """Add one consonant-vowel syllable of `length` seconds to `out` at sample `start`."""
    kind, low, high, c_len = CONSONANTS[consonant]
    c_n = n_samples(c_len, sample_rate)
    if kind in ("noise", "burst"):
        tau = 0.005 if kind == "burst" else c_len
        env = exp_decay(c_n, sample_rate, tau, 0.003 if kind == "burst" else 0.02)
        place(out, 0.25 * band_noise(rng, c_n, sample_rate, low, high) * env, start)
    elif kind == "nasal":
        seg = source[start : start + c_n]
        place(out, 0.5 * resonator(seg, sample_rate, low * scale, 80.0), start)
    v_start = start + c_n
    v_n = max(n_samples(length, sample_rate) - c_n, n_samples(0.05, sample_rate))
    seg = source[v_start : v_start + v_n]
    if len(seg) == 0:
        return
    voiced = sum(
        g * resonator(seg, sample_rate, f * scale, bw)
        for f, g, bw in zip(VOWELS[vowel], (1.0, 0.6, 0.3), (80.0, 100.0, 140.0), strict=True)
    )
    k = np.arange(len(seg))
    ramp = n_samples(0.02, sample_rate)
    env = np.minimum(1.0, np.minimum(k, len(seg) - 1 - k) / max(ramp, 1))
    place(out, voiced * env, v_start)
