"""Stage 1's audio measurements of one clip, mono `(samples,)` float at its native rate: level,
clipping, DC and mains hum, the spectral cliff of band-limited (upsampled) audio, loudness."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

HUM_BASES = (50.0, 60.0)
HUM_HARMONICS = 5
HUM_HALF_WIDTH_HZ = 2.0


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-200 for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 1e-10 else -200.0


def clipped_fraction(audio: np.ndarray, level: float = 0.99, run: int = 3) -> float:
    """Share of samples in flat tops: runs of ≥ `run` consecutive samples at |x| ≥ `level`."""
    hot = np.abs(audio) >= level
    if not hot.any():
        return 0.0
    padded = np.concatenate([[False], hot, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    lengths = edges[1::2] - edges[::2]
    return float(lengths[lengths >= run].sum() / len(audio))


def dc_ratio(audio: np.ndarray) -> float:
    """|mean| / RMS: 1 for a constant offset, ~0 for zero-mean audio."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return abs(float(np.mean(audio))) / rms if rms > 1e-10 else 0.0


def _welch_db(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    nperseg = min(len(audio), 1 << int(np.log2(max(sample_rate // 8, 256))))
    freqs, power = signal.welch(audio, sample_rate, nperseg=nperseg)
    return freqs, power


def hum_ratio(audio: np.ndarray, sample_rate: int) -> float:
    """Share of the (DC-removed) power within ±2 Hz of 50/60 Hz and their first harmonics,
    the larger of the two mains frequencies."""
    x = audio - np.mean(audio)
    nperseg = min(len(x), 1 << int(np.ceil(np.log2(sample_rate))))  # ≤ 1 Hz resolution
    freqs, power = signal.welch(x, sample_rate, nperseg=nperseg)
    total = float(power.sum())
    if total <= 0:
        return 0.0
    best = 0.0
    for base in HUM_BASES:
        near = np.zeros_like(freqs, dtype=bool)
        for k in range(1, HUM_HARMONICS + 1):
            near |= np.abs(freqs - k * base) <= HUM_HALF_WIDTH_HZ
        best = max(best, float(power[near].sum()) / total)
    return best


def spectral_cliff(audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(cliff_db, cutoff_hz): the largest drop between the median log power of the 5% band
    below a frequency and the 5% band above it, where nothing above comes back within 20 dB.
    Upsampled audio shows a cliff of 50+ dB at its old Nyquist; natural roll-offs and the
    gaps between harmonics stay far lower."""
    freqs, power = _welch_db(audio, sample_rate)
    db = 10.0 * np.log10(power + 1e-20)
    width = max(2, int(0.05 * len(freqs)))
    ceiling = np.maximum.accumulate(ndimage.uniform_filter1d(db, 5)[::-1])[::-1]
    best, cutoff = 0.0, float(freqs[-1])
    for i in range(width, len(freqs) - width):
        below = float(np.median(db[i - width : i]))
        drop = below - float(np.median(db[i : i + width]))
        if drop > best and ceiling[i] < below - 20.0:
            best, cutoff = drop, float(freqs[i])
    return best, cutoff


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770 integrated loudness (pyloudnorm); -inf below the gate or when too short."""
    import pyloudnorm

    if len(audio) < int(0.4 * sample_rate):
        return float("-inf")
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.astype(np.float64)))


def normalising_gain_db(lufs: float, peak: float, target_lufs: float) -> float:
    """Gain reaching `target_lufs`, lowered so the sample peak stays at or below -1 dBFS."""
    if not np.isfinite(lufs) or peak <= 0:
        return 0.0
    headroom = -1.0 - 20.0 * np.log10(peak)
    return float(min(target_lufs - lufs, headroom))


def audio_measurements(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Every stage-1 audio measurement of a mono clip, by column name."""
    cliff, cutoff = spectral_cliff(audio, sample_rate)
    return {
        "rms_dbfs": rms_dbfs(audio),
        "peak": float(np.max(np.abs(audio))) if len(audio) else 0.0,
        "clipped_fraction": clipped_fraction(audio),
        "dc_ratio": dc_ratio(audio),
        "hum_ratio": hum_ratio(audio, sample_rate),
        "cliff_db": cliff,
        "cutoff_hz": cutoff,
        "nyquist_hz": sample_rate / 2.0,
        "lufs": integrated_lufs(audio, sample_rate),
    }


def silence_split(
    audio: np.ndarray, sample_rate: int, gap_s: float, floor_db: float = -45.0
) -> list[tuple[int, int]]:
    """Sample ranges of the sounding pieces between silent gaps of ≥ `gap_s` seconds (20 ms
    frames quieter than `floor_db` below the loudest frame)."""
    hop = max(1, int(0.02 * sample_rate))
    count = len(audio) // hop
    if count == 0:
        return [(0, len(audio))]
    frames = audio[: count * hop].reshape(count, hop)
    level = 10.0 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-20)
    loud = level > level.max() + floor_db
    min_gap = max(1, round(gap_s / 0.02))
    pieces, start, quiet = [], None, 0
    for i, on in enumerate(loud):
        if on:
            if start is None:
                start = i
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet >= min_gap:
                pieces.append((start * hop, (i - quiet + 1) * hop))
                start, quiet = None, 0
    if start is not None:
        pieces.append((start * hop, len(audio)))
    return pieces or [(0, len(audio))]
