"""Atomic writers for the world's media: PCM-16 WAV and H.264 MP4 (temp file + os.replace)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from audiox_turbo.atomic import atomic_file

TEMP_SUFFIX = ".part"
FILE_MODE = 0o644


def atomic_path(path: Path) -> AbstractContextManager[Path]:
    """A temp path next to `path` (named `*.part`, see `remove_stale_temps`) that replaces it."""
    return atomic_file(path, suffix=TEMP_SUFFIX)


def remove_stale_temps(folder: Path) -> int:
    """Delete temp files left in `folder` by a killed run; returns how many were removed."""
    stale = list(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio (samples,) in [-1, 1] as 16-bit PCM WAV, atomically."""
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")


def write_mp4(path: Path, frames: np.ndarray, fps: int, crf: int = 20) -> None:
    """Encode RGB frames (n, height, width, 3) uint8 as H.264 (yuv420p) MP4, atomically and
    deterministically (one encoder thread)."""
    import av

    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "fast"}
        stream.codec_context.thread_count = 1
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
