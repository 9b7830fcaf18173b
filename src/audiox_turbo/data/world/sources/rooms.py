"""Room reverberation: impulse responses of shoebox rooms (pyroomacoustics image sources)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

from audiox_turbo.data.world.sources.catalog import require

ROOMS: dict[str, tuple[tuple[float, float, float], float, int]] = {
    "small room": ((3.5, 3.0, 2.5), 0.35, 12),
    "living room": ((6.0, 4.5, 2.7), 0.25, 12),
    "bathroom": ((2.5, 2.0, 2.4), 0.08, 20),
    "hall": ((20.0, 12.0, 8.0), 0.15, 8),
}
"""Room name → (dimensions in m, wall energy absorption, image-source order)."""


@lru_cache(maxsize=16)
def impulse_response(room: str, sample_rate: int) -> np.ndarray:
    """Normalised impulse response `(taps,)` of `room` (direct path at its peak, unit peak)."""
    require("rooms")
    import pyroomacoustics as pra

    dims, absorption, order = ROOMS[room]
    shoebox = pra.ShoeBox(
        list(dims), fs=sample_rate, materials=pra.Material(absorption), max_order=order
    )
    shoebox.add_source([dims[0] * 0.3, dims[1] * 0.4, 1.5])
    shoebox.add_microphone([dims[0] * 0.7, dims[1] * 0.6, 1.6])
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    rir = rir[int(np.argmax(np.abs(rir))) :]
    return rir / np.max(np.abs(rir))


def reverberate(audio: np.ndarray, room: str, sample_rate: int) -> np.ndarray:
    """`audio` `(samples,)` heard in `room`: convolved, the direct path at the original time,
    same length."""
    return signal.fftconvolve(audio, impulse_response(room, sample_rate))[: len(audio)]
