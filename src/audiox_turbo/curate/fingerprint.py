"""Audio fingerprints and duplicate search: exact (PCM hash) and near (time-shifted,
re-encoded) duplicates.

The fingerprint is Haitsma & Kalker's: at 16 kHz, 256 ms frames every 16 ms, 33 log-spaced
bands from 150 Hz to 5 kHz, one 32-bit word per frame whose bits are the signs of the band
energy differences' time differences. Two clips are near duplicates when, at the best frame
offset (overlap ≥ half the shorter clip), the bit error rate of their words is below a
threshold (unrelated audio: ~0.5). Candidates come from an inverted index of the words, so the
search does not compare every pair.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

RATE = 16000
FRAME = 4096
HOP = 256
BANDS = 33
FMIN, FMAX = 150.0, 5000.0
MIN_SHARED_WORDS = 3


def pcm_hash(audio: np.ndarray) -> str:
    """SHA-1 of the clip quantised to 16 bits: equal for bit-identical decodes."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    return hashlib.sha1(pcm.tobytes()).hexdigest()


def fingerprint(audio16k: np.ndarray) -> np.ndarray:
    """uint32 words `(frames - 1,)` of a mono 16 kHz clip; silent frames give 0."""
    x = np.asarray(audio16k, dtype=np.float64)
    if len(x) < FRAME + HOP:
        x = np.pad(x, (0, FRAME + HOP - len(x)))
    count = 1 + (len(x) - FRAME) // HOP
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * np.hanning(FRAME), axis=1)) ** 2
    freqs = np.fft.rfftfreq(FRAME, 1.0 / RATE)
    edges = np.geomspace(FMIN, FMAX, BANDS + 1)
    band = np.stack(
        [
            power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
            for lo, hi in itertools.pairwise(edges)
        ],
        axis=1,
    )
    energy = np.log(band + 1e-10)
    diff = energy[:, :-1] - energy[:, 1:]
    bits = (diff[1:] - diff[:-1]) > 0
    words = (bits.astype(np.uint64) << np.arange(BANDS - 1, dtype=np.uint64)).sum(axis=1)
    quiet = band.sum(axis=1) < 1e-6 * max(float(band.sum(axis=1).max()), 1e-20)
    words[quiet[1:]] = 0
    return words.astype(np.uint32)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x.astype(">u4").view(np.uint8).reshape(-1, 4), axis=1).sum(axis=1)


def best_bit_error_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Lowest bit error rate of `a` against `b` over frame offsets that overlap at least half
    of the shorter one (1.0 when either is empty)."""
    if len(a) == 0 or len(b) == 0:
        return 1.0
    need = max(1, min(len(a), len(b)) // 2)
    best = 1.0
    for shift in range(-(len(b) - need), len(a) - need + 1):
        lo, hi = max(0, shift), min(len(a), shift + len(b))
        if hi - lo < need:
            continue
        errors = _popcount(a[lo:hi] ^ b[lo - shift : hi - shift]).sum()
        best = min(best, float(errors) / (32 * (hi - lo)))
    return best


def find_duplicates(
    ids: Sequence[str],
    hashes: Sequence[str],
    prints: Sequence[np.ndarray],
    max_ber: float,
) -> dict[str, tuple[str, str]]:
    """{dropped id: (reason, kept id)} for clips in priority order (earlier ones are kept):
    `exact_duplicate` for equal PCM hashes, `near_duplicate` for a bit error rate ≤ `max_ber`
    against a kept clip that shares at least MIN_SHARED_WORDS non-zero words."""
    dropped: dict[str, tuple[str, str]] = {}
    first_by_hash: dict[str, str] = {}
    index: dict[int, list[int]] = defaultdict(list)
    for i, (clip, digest, words) in enumerate(zip(ids, hashes, prints, strict=True)):
        if digest in first_by_hash:
            dropped[clip] = ("exact_duplicate", first_by_hash[digest])
            continue
        first_by_hash[digest] = clip
        shared: dict[int, int] = defaultdict(int)
        unique = np.unique(words[words != 0])
        for word in unique.tolist():
            for j in index.get(word, ()):
                shared[j] += 1
        match = next(
            (
                j
                for j, n in sorted(shared.items(), key=lambda kv: -kv[1])
                if n >= MIN_SHARED_WORDS and best_bit_error_rate(prints[j], words) <= max_ber
            ),
            None,
        )
        if match is not None:
            dropped[clip] = ("near_duplicate", ids[match])
            continue
        for word in unique.tolist():
            index[word].append(i)
    return dropped
