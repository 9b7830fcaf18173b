"""Measurements on rendered audio that check the world's labels: onset times and tempo."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _frames(audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Frames of a 1-D signal centred on multiples of hop, shape (n_frames, window)."""
    padded = np.pad(audio, (window // 2, window // 2))
    count = 1 + (len(padded) - window) // hop
    idx = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    return padded[idx]


def onset_strength(audio: np.ndarray, sample_rate: int, hop_s: float = 0.004) -> np.ndarray:
    """Log-magnitude spectral flux minus its 0.2 s running median (rectified), one value per
    hop of `hop_s` seconds; the median removes the steady flux of vibrato and tremolo."""
    hop = max(1, round(hop_s * sample_rate))
    window = 1 << int(np.ceil(np.log2(0.032 * sample_rate)))
    spec = np.abs(np.fft.rfft(_frames(audio, window, hop) * np.hanning(window), axis=1))
    logspec = np.log1p(100.0 * spec)
    flux = np.maximum(np.diff(logspec, axis=0, prepend=logspec[:1]), 0.0).sum(axis=1)
    baseline = ndimage.median_filter(flux, size=2 * int(0.1 / hop_s) + 1, mode="nearest")
    return np.maximum(flux - baseline, 0.0)


def estimate_tempo(
    audio: np.ndarray, sample_rate: int, bpm_range: tuple[float, float] = (55.0, 190.0)
) -> float:
    """Tempo in BPM: the shortest autocorrelation peak of the onset strength (within the BPM
    range) reaching 70% of the highest one, refined on its highest multiple in the clip."""
    hop_s = round(0.004 * sample_rate) / sample_rate  # the hop onset_strength really uses
    env = onset_strength(audio, sample_rate, hop_s)
    env = env - env.mean()
    n = len(env)
    spectrum = np.fft.rfft(env, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    lo = int(np.floor(60.0 / bpm_range[1] / hop_s))
    hi = min(int(np.ceil(60.0 / bpm_range[0] / hop_s)), n // 2)
    if hi - lo < 3:
        raise ValueError("clip too short to measure a tempo in this range")
    inner = np.arange(lo + 1, hi)
    peaks = inner[(ac[inner] >= ac[inner - 1]) & (ac[inner] >= ac[inner + 1])]
    if len(peaks) == 0:
        raise ValueError("no periodicity found in the onset strength")
    strong = peaks[ac[peaks] >= 0.7 * ac[peaks].max()]
    period = float(strong.min())
    for k in range(max(1, int((0.6 * n) // period)), 0, -1):
        refined = _peak_near(ac, k * period, max(2, int(0.08 * period)))
        if refined is not None:
            return 60.0 / (refined / k * hop_s)
    return 60.0 / (period * hop_s)


def _peak_near(ac: np.ndarray, lag: float, radius: int) -> float | None:
    """Sub-sample position of the autocorrelation maximum within `radius` of lag, or None."""
    c = round(lag)
    lo, hi = max(1, c - radius), min(len(ac) - 2, c + radius)
    if hi <= lo:
        return None
    i = lo + int(np.argmax(ac[lo : hi + 1]))
    if i in (lo, hi):
        return None
    a, b, d = ac[i - 1], ac[i], ac[i + 1]
    denom = a - 2 * b + d
    return float(i + (0.5 * (a - d) / denom if denom < 0 else 0.0))


def detect_onsets(
    audio: np.ndarray,
    sample_rate: int,
    rise_db: float = 15.0,
    floor_db: float = -40.0,
    min_gap: float = 0.1,
) -> np.ndarray:
    """Times in seconds of percussive onsets over a quiet background: where the 2 ms frame
    energy rises by `rise_db` within 6 ms and is within `floor_db` of the loudest frame."""
    hop = max(1, round(0.001 * sample_rate))
    window = max(2, round(0.002 * sample_rate))
    energy = np.mean(np.square(_frames(audio, window, hop)), axis=1)
    level = 10.0 * np.log10(energy + 1e-12)
    lag = 6
    rise = level[lag:] - level[:-lag]
    loud = level[lag:] > level.max() + floor_db
    candidates = np.flatnonzero((rise > rise_db) & loud) + lag
    onsets: list[float] = []
    for frame in candidates:
        t = frame * hop / sample_rate
        if not onsets or t - onsets[-1] > min_gap:
            onsets.append(t)
    return np.array(onsets)
