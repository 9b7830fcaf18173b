"""The world's video writer: RGB frames to H.264 MP4, atomically (audio goes through
`audiox_turbo.io.audio.save_audio`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audiox_turbo.atomic import atomic_file


def write_mp4(path: Path, frames: np.ndarray, fps: int, crf: int = 20) -> None:
    """Encode RGB frames (n, height, width, 3) uint8 as H.264 (yuv420p) MP4, atomically and
    deterministically (one encoder thread)."""
    import av

    with atomic_file(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "fast"}
        stream.codec_context.thread_count = 1
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
