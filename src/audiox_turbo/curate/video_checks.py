"""Stage 1's video measurements of one window: black and frozen frames, and the audio–video
offset found by correlating audio onsets with visual motion."""

from __future__ import annotations

import numpy as np

BLACK_LUMA = 16.0
MAX_OFFSET_S = 1.0
DISTINCT_S = 0.2


def luma_frames(
    path: str, start: float, duration: float, size: int = 64
) -> tuple[np.ndarray, float]:
    """Grey frames `(T, H, W)` float32 in [0, 255] of [start, start + duration) as decoded (no
    frame-rate conversion), subsampled to about `size` pixels a side, and the frame rate."""
    import av

    frames = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        origin = (container.start_time or 0) / 1_000_000
        if start > 0:  # to the keyframe before the window, not through the whole file
            container.seek(int((origin + start) / stream.time_base), stream=stream)
        for frame in container.decode(stream):
            t = (frame.time if frame.time is not None else 0.0) - origin
            if t < start - 1e-6:
                continue
            if t >= start + duration - 1e-6:
                break
            grey = frame.to_ndarray(format="gray").astype(np.float32)
            step = max(1, min(grey.shape) // size)
            frames.append(grey[::step, ::step])
    if not frames:
        return np.zeros((0, size, size), np.float32), rate
    return np.stack(frames), rate


def motion(frames: np.ndarray) -> np.ndarray:
    """Mean absolute frame difference `(T,)` (0 for the first frame)."""
    if len(frames) < 2:
        return np.zeros(len(frames), np.float32)
    return np.concatenate([[0.0], np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))])


def audio_changes(audio: np.ndarray, sample_rate: int, fps: float, count: int) -> np.ndarray:
    """|Δ log RMS| per video frame `(≤ count,)`: where the audio starts or stops sounding."""
    hop = max(1, round(sample_rate / fps))
    n = min(len(audio) // hop, count)
    if n < 2:
        return np.zeros(n)
    rms = np.sqrt(np.mean(np.square(audio[: n * hop].reshape(n, hop), dtype=np.float64), axis=1))
    level = np.log(rms + 1e-4)
    return np.abs(np.diff(level, prepend=level[0]))


def av_offset(
    audio: np.ndarray, sample_rate: int, frames: np.ndarray, fps: float
) -> tuple[float, float]:
    """(offset_s, confidence): the lag in ±1 s maximising the normalised correlation of audio
    changes and visual motion (positive: the audio comes late), and how far that peak stands
    above the best correlation more than DISTINCT_S away (periodic scenes: near 0)."""
    vis = motion(frames)
    aud = audio_changes(audio, sample_rate, fps, len(vis))
    n = min(len(aud), len(vis))
    a, v = aud[:n] - aud[:n].mean(), vis[:n] - vis[:n].mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(v))
    if n < 4 or norm < 1e-9:
        return 0.0, 0.0
    max_lag = min(round(MAX_OFFSET_S * fps), n - 2)
    lags = np.arange(-max_lag, max_lag + 1)
    corr = (
        np.array(
            [np.dot(a[k:], v[: n - k]) if k >= 0 else np.dot(a[: n + k], v[-k:]) for k in lags]
        )
        / norm
    )
    best = int(np.argmax(corr))
    far = np.abs(lags - lags[best]) > round(DISTINCT_S * fps)
    margin = float(corr[best] - corr[far].max()) if far.any() else float(corr[best])
    return float(lags[best] / fps), margin


def video_measurements(
    path: str, start: float, duration: float, audio: np.ndarray, sample_rate: int
) -> dict[str, float]:
    """Black-frame share, largest motion and the A/V offset of one video window."""
    frames, fps = luma_frames(path, start, duration)
    if len(frames) == 0:
        return {"black_fraction": 1.0, "motion_max": 0.0, "av_offset": 0.0, "av_confidence": 0.0}
    offset, confidence = av_offset(audio, sample_rate, frames, fps)
    return {
        "black_fraction": float((frames.mean(axis=(1, 2)) < BLACK_LUMA).mean()),
        "motion_max": float(motion(frames).max()),
        "av_offset": offset,
        "av_confidence": confidence,
    }
