"""Video files: frame sampling on real timestamps, duration, muxing generated audio onto video.

Frames are uint8 tensors (T, 3, size, size). Times are seconds from the start of the file
(the container's start time), so sources of any frame rate are sampled at the right instants.
Every problem with a file raises a one-line `MediaError` that names the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from audiox_turbo.atomic import atomic_file
from audiox_turbo.errors import MediaError
from audiox_turbo.io.audio import check_media_file

if TYPE_CHECKING:
    import av

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
_TIME_TOLERANCE = 1e-6  # seconds; a frame whose pts equals a target time counts as shown


def _open(path: Path) -> av.container.InputContainer:
    import av

    try:
        return av.open(str(path))
    except av.FFmpegError as e:
        raise MediaError(f"{path}: corrupt or unsupported media ({e.strerror})") from None


def _video_stream(path: Path, container: av.container.InputContainer) -> Any:
    if not container.streams.video:
        raise MediaError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _to_rgb(frame: av.VideoFrame, size: int) -> np.ndarray:
    """A decoded frame resized (area filter, aspect not kept) to (size, size, 3) uint8 RGB."""
    return frame.reformat(
        width=size, height=size, format="rgb24", interpolation="AREA"
    ).to_ndarray()


def _stream_duration(container: av.container.InputContainer, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _decoded_frames(path: Path, source: Any, stream: Any) -> Iterator[Any]:
    """Every frame of `stream`; decoding failures become a MediaError naming `path`."""
    import av

    try:
        yield from source.decode(stream)
    except av.FFmpegError as e:
        raise MediaError(f"{path}: corrupt video ({e.strerror})") from None


def _sample_frames(
    path: Path, container: av.container.InputContainer, stream: Any, times: list[float], size: int
) -> list[np.ndarray]:
    """The frame shown at each (increasing) time, as RGB arrays; the last frame repeats past
    the end. A frame is shown from its timestamp until the next frame's."""
    import av

    origin = container.start_time / 1_000_000 if container.start_time is not None else 0.0
    fallback_rate = float(stream.average_rate or 25)
    picked: list[np.ndarray] = []
    shown: Any = None
    shown_rgb: np.ndarray | None = None

    def pick(frame: Any) -> None:
        nonlocal shown, shown_rgb
        if frame is not shown or shown_rgb is None:
            shown, shown_rgb = frame, _to_rgb(frame, size)
        picked.append(shown_rgb)

    if times[0] > 0:
        try:
            container.seek(int((times[0] + origin) / stream.time_base), stream=stream)
        except av.FFmpegError as e:
            raise MediaError(f"{path}: cannot seek to {times[0]} s ({e.strerror})") from None
    current = None
    for index, frame in enumerate(_decoded_frames(path, container, stream)):
        t = (frame.time if frame.time is not None else index / fallback_rate) - origin
        while len(picked) < len(times) and t > times[len(picked)] + _TIME_TOLERANCE:
            pick(current if current is not None else frame)
        if len(picked) == len(times):
            break
        current = frame
    if current is None and not picked:
        raise MediaError(f"{path}: no video frames could be decoded")
    while len(picked) < len(times):
        pick(current)
    return picked


def load_video_frames(
    path: str | os.PathLike[str],
    fps: float,
    size: int,
    start: float = 0.0,
    duration: float | None = None,
    num_frames: int | None = None,
) -> Tensor:
    """uint8 (T,3,size,size): the frames shown at times start + k/fps, k < T.

    T = num_frames, else round(duration·fps), else enough to reach the end of the video (at
    least 1). Past the end the last frame repeats. A still image (png/jpg/webp/bmp) gives T
    copies of itself (T = 1 when neither num_frames nor duration is given).
    """
    path = check_media_file(path)
    if not fps > 0 or size < 1:
        raise MediaError(f"{path}: fps and size must be positive, got fps={fps}, size={size}")
    if not start >= 0.0 or (duration is not None and not duration > 0.0):
        raise MediaError(f"{path}: invalid window start={start}, duration={duration}")
    if num_frames is not None and num_frames < 1:
        raise MediaError(f"{path}: num_frames must be >= 1, got {num_frames}")
    count = num_frames
    if count is None and duration is not None:
        count = max(1, round(duration * fps))
    with _open(path) as container:
        stream = _video_stream(path, container)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            frames = _sample_frames(path, container, stream, [0.0], size) * (count or 1)
        else:
            if count is None:
                total = _stream_duration(container, stream) or 0.0
                count = max(1, round((total - start) * fps))
            times = [start + k / fps for k in range(count)]
            frames = _sample_frames(path, container, stream, times, size)
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def video_duration(path: str | os.PathLike[str]) -> float:
    """Duration of the first video stream in seconds (0.0 for a still image)."""
    path = check_media_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return 0.0
    with _open(path) as container:
        stream = _video_stream(path, container)
        known = _stream_duration(container, stream)
        if known is not None:
            return known
        times = [f.time for f in _decoded_frames(path, container, stream) if f.time is not None]
        rate = float(stream.average_rate or 25)
        return (max(times) + 1.0 / rate) if times else 0.0


def _encode_video(
    path: Path, source: Any, stream: Any, out: Any, video: Any, start: float = 0.0
) -> None:
    """Re-encode the input frames shown from `start` s on into `video`, each at its own time
    relative to `start` (so variable-frame-rate sources keep their timing)."""
    rate = Fraction(video.codec_context.framerate)
    origin = (source.start_time or 0) / 1_000_000
    last = -1
    for index, frame in enumerate(_decoded_frames(path, source, stream)):
        shown = frame.time - origin if frame.time is not None else index / rate
        if shown < start - 0.5 / rate:
            continue
        image = frame.reformat(width=video.width, height=video.height, format="yuv420p")
        last = max(last + 1, round((shown - start) * rate))
        image.pts, image.time_base = last, 1 / rate
        out.mux(video.encode(image))
    out.mux(video.encode(None))


def _encode_audio(wav: Tensor, sample_rate: int, out: Any, audio: Any) -> None:
    """Encode (C,S) float audio into the AAC output stream `audio`, whole."""
    import av

    planar = np.ascontiguousarray(wav.detach().to("cpu", torch.float32).clamp(-1, 1).numpy())
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=audio.layout.name)
    frame.sample_rate, frame.pts, frame.time_base = sample_rate, 0, Fraction(1, sample_rate)
    out.mux(audio.encode(frame))
    out.mux(audio.encode(None))


def mux_audio_onto_video(
    video_path: str | os.PathLike[str],
    wav: Tensor,
    sample_rate: int,
    out_path: str | os.PathLike[str],
    start: float = 0.0,
) -> Path:
    """Write an mp4 of `video_path`'s video (re-encoded H.264) + `wav` (C,S) as AAC, atomically.

    The audio is kept whole (not cropped or padded to the video's duration); C is 1 or 2.
    `start` (s) drops the video before it, so audio generated for [start, ...) lines up.
    """
    import av

    video_path, out_path = check_media_file(video_path), Path(out_path)
    if wav.ndim != 2 or wav.shape[0] not in (1, 2) or wav.shape[1] == 0:
        raise ValueError(f"expected a mono or stereo waveform (C, S), got {tuple(wav.shape)}")
    if not torch.isfinite(wav).all():
        raise MediaError(f"{out_path}: refusing to write NaN or infinite audio samples")
    with atomic_file(out_path) as tmp, _open(video_path) as source:
        stream = _video_stream(video_path, source)
        width, height = stream.codec_context.width, stream.codec_context.height
        try:
            with av.open(str(tmp), "w", format="mp4") as out:
                video = out.add_stream(
                    "libx264",
                    rate=stream.average_rate or Fraction(25),
                    options={"crf": "18", "preset": "veryfast"},
                )
                video.width, video.height = width - width % 2, height - height % 2
                video.pix_fmt = "yuv420p"
                layout = "mono" if wav.shape[0] == 1 else "stereo"
                audio = out.add_stream("aac", rate=sample_rate, layout=layout)
                audio.bit_rate = min(96_000, 6 * sample_rate) * wav.shape[0]
                out.start_encoding()
                _encode_video(video_path, source, stream, out, video, start)
                _encode_audio(wav, sample_rate, out, audio)
        except av.FFmpegError as e:
            raise MediaError(f"{out_path}: cannot encode ({e.strerror})") from None
    return out_path
