"""Audio files: decode (soundfile, PyAV), resample (soxr), peak-normalise, save atomically.

Waveforms are float32 tensors (channels, samples) in [-1, 1]. Every problem with a file raises
a one-line `MediaError` that names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from audiox_turbo.atomic import atomic_file
from audiox_turbo.errors import MediaError

SOUNDFILE_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff"})
_SAVE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".mp3": "MP3"}
_SAVE_ENCODINGS = {"pcm16": "PCM_16", "pcm24": "PCM_24", "float": "FLOAT"}


def check_media_file(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path if it is an existing, non-empty file; MediaError otherwise."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    return path


def _check_window(path: Path, start: float, duration: float | None) -> None:
    if not start >= 0.0:
        raise MediaError(f"{path}: start must be >= 0 seconds, got {start}")
    if duration is not None and not duration > 0.0:
        raise MediaError(f"{path}: duration must be > 0 seconds, got {duration}")


def _read_with_soundfile(
    path: Path, start: float, duration: float | None
) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 and the rate, read through libsndfile."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            first = round(start * rate)
            if first >= f.frames:
                return np.zeros((f.channels, 0), np.float32), rate
            if first > 0:
                f.seek(first)
            count = -1 if duration is None else round(duration * rate)
            data = f.read(count, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as e:
        reason = getattr(e, "error_string", None) or type(e).__name__
        raise MediaError(f"{path}: corrupt or not an audio file ({reason})") from None
    return data.T, rate


def _read_with_pyav(path: Path, start: float, duration: float | None) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 and the rate of the first audio stream, decoded by FFmpeg."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            # timestamps count from the container's start time (non-zero in e.g. MPEG-TS)
            origin = (container.start_time or 0) / 1_000_000
            if start > 0:
                container.seek(int((origin + start) / stream.time_base), stream=stream)
            resampler = av.AudioResampler(format="fltp")
            chunks: list[np.ndarray] = []
            collected = 0
            first_time: float | None = None
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = frame.time if frame.time is not None else origin
                for planar in resampler.resample(frame):
                    chunks.append(planar.to_ndarray())
                    collected += chunks[-1].shape[1]
                if (
                    duration is not None
                    and first_time + collected / rate >= origin + start + duration
                ):
                    break
            chunks.extend(planar.to_ndarray() for planar in resampler.resample(None))
    except av.FFmpegError as e:
        raise MediaError(f"{path}: corrupt or unsupported media ({e.strerror})") from None
    if not chunks:
        return np.zeros((1, 0), np.float32), rate
    data = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    skip = max(
        0, round((origin + start - (first_time if first_time is not None else origin)) * rate)
    )
    stop = None if duration is None else skip + round(duration * rate)
    return data[:, skip:stop], rate


def _convert_channels(path: Path, wav: Tensor, channels: int) -> Tensor:
    """(C,S) -> (channels,S): average to mono, duplicate mono, or keep the first channels."""
    have = wav.shape[0]
    if have == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    if have == 1:
        return wav.expand(channels, -1).clone()
    if have > channels:
        return wav[:channels].clone()
    raise MediaError(f"{path}: cannot convert {have} audio channels to {channels}")


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    channels: int | None = None,
    start: float = 0.0,
    duration: float | None = None,
) -> tuple[Tensor, int]:
    """Decode `path` -> (float32 (C,S) in [-1,1], rate), optionally resampled and re-channelled.

    wav/flac/ogg/aiff go through soundfile, anything else (mp3, m4a, mp4...) through PyAV.
    `start`/`duration` select a window in seconds (a window past the end yields what exists).
    """
    path = check_media_file(path)
    _check_window(path, start, duration)
    if channels is not None and channels < 1:
        raise MediaError(f"{path}: channels must be >= 1, got {channels}")
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        data, rate = _read_with_soundfile(path, start, duration)
    else:
        data, rate = _read_with_pyav(path, start, duration)
    if data.shape[1] == 0:
        where = f" after {start} s" if start > 0 else ""
        raise MediaError(f"{path}: no audio samples{where}")
    if not np.isfinite(data).all():
        raise MediaError(f"{path}: audio contains NaN or infinite samples")
    wav = torch.from_numpy(np.ascontiguousarray(data)).clamp_(-1.0, 1.0)
    if channels is not None:
        wav = _convert_channels(path, wav, channels)
    if sample_rate is not None and sample_rate != rate:
        wav = resample(wav, rate, sample_rate)
        rate = sample_rate
    return wav.contiguous(), rate


def resample(wav: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """(..., S) -> (..., round(S·new_sr/orig_sr)) with soxr (HQ), each channel independently."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wav
    import soxr

    lead, samples = wav.shape[:-1], wav.shape[-1]
    columns = wav.detach().to("cpu", torch.float32).reshape(-1, samples).T.contiguous().numpy()
    out = soxr.resample(columns, orig_sr, new_sr, quality="HQ")
    return torch.from_numpy(np.ascontiguousarray(out.T)).reshape(*lead, -1).to(wav.device)


def peak_normalize(wav: Tensor, peak: float = 1.0, eps: float = 1e-8) -> Tensor:
    """Scale each item so max|x| = `peak`, then clamp to [-1, 1]; (C,S) or (B,C,S)."""
    dims = (-2, -1) if wav.ndim >= 2 else (-1,)
    amax = wav.abs().amax(dim=dims, keepdim=True).clamp_min(eps)
    return (wav * (peak / amax)).clamp(-1.0, 1.0)


def save_audio(
    path: str | os.PathLike[str], wav: Tensor, sample_rate: int, encoding: str = "pcm16"
) -> Path:
    """Write (C,S) to .wav (pcm16, pcm24 or float), .flac (pcm16 or pcm24) or .mp3 (lossy,
    `encoding` ignored), atomically."""
    import soundfile as sf

    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MediaError(
            f"{path}: unsupported audio format {path.suffix!r} (use .wav, .flac or .mp3)"
        )
    subtype = "MPEG_LAYER_III" if fmt == "MP3" else _SAVE_ENCODINGS.get(encoding)
    if subtype is None or (fmt == "FLAC" and subtype == "FLOAT"):
        raise MediaError(f"{path}: encoding {encoding!r} is not available for {path.suffix}")
    if wav.ndim != 2:
        raise ValueError(f"expected a waveform (channels, samples), got {tuple(wav.shape)}")
    data = wav.detach().to("cpu", torch.float32).numpy()
    if not np.isfinite(data).all():
        raise MediaError(f"{path}: refusing to write NaN or infinite samples")
    if subtype != "FLOAT":
        data = np.clip(data, -1.0, 1.0)
    with atomic_file(path) as tmp:
        sf.write(tmp, np.ascontiguousarray(data.T), sample_rate, subtype=subtype, format=fmt)
    return path
