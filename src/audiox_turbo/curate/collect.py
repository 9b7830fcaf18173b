"""Stage 1 on one source file: probe, decode, cut into clips, measure each clip, write the
loudness-normalised audio (and the video window) of every measured clip, and return one row
per clip (one row for a file that cannot be used at all).

Rows hold measurements only; what is kept is decided later from them (`curate.decide`), so a
changed threshold re-filters without decoding again.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from audiox_turbo.curate.fingerprint import RATE, fingerprint, pcm_hash
from audiox_turbo.curate.quality import (
    audio_measurements,
    normalising_gain_db,
    silence_split,
)
from audiox_turbo.curate.settings import CutSettings
from audiox_turbo.curate.video_checks import video_measurements
from audiox_turbo.errors import MediaError

NAN = float("nan")
MEASURE_COLUMNS = {
    "rms_dbfs": NAN, "peak": NAN, "clipped_fraction": NAN, "dc_ratio": NAN, "hum_ratio": NAN,
    "cliff_db": NAN, "cutoff_hz": NAN, "nyquist_hz": NAN, "lufs": NAN, "gain_db": NAN,
    "black_fraction": NAN, "motion_max": NAN, "av_offset": NAN, "av_confidence": NAN,
}  # fmt: skip
ROW_DEFAULTS: dict[str, Any] = {
    "clip_id": "", "source": "", "order": 0, "window": 0, "start": 0.0, "duration": 0.0,
    "sample_rate": 0, "channels": 0, "has_video": False, "has_audio": False, "error": "",
    "audio": "", "video": "", "source_caption": "", "pcm_sha1": "",
    **MEASURE_COLUMNS,
}  # fmt: skip
"""Every stage-1 column but `block` and `fingerprint`, with its value when not measured."""


def clip_id(source: str, window: int) -> str:
    """Stable clip id: a hash of the source URL and the window number."""
    return f"{hashlib.sha1(source.encode()).hexdigest()[:12]}-{window:03d}"


@contextmanager
def local_copy(url: str) -> Iterator[Path]:
    """A local path of `url`: the file itself, or a temporary download of an fsspec URL."""
    if "://" not in url or url.startswith("file://"):
        yield Path(url.removeprefix("file://"))
        return
    import fsspec

    suffix = Path(url.split("?", 1)[0]).suffix
    with tempfile.TemporaryDirectory(prefix="curate-") as tmp:
        local = Path(tmp) / f"source{suffix}"
        with fsspec.open(url, "rb") as src, local.open("wb") as dst:
            dst.write(src.read())
        yield local


def probe(path: Path) -> tuple[bool, bool]:
    """(has_audio, has_video) of a media file; MediaError when it cannot be opened."""
    import av

    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            has_audio = bool(container.streams.audio)
            has_video = any(
                s.frames != 1 and s.disposition.value & 0x400 == 0 for s in container.streams.video
            )  # 0x400: an attached picture (cover art), not a video
    except av.FFmpegError as e:
        raise MediaError(f"{path}: corrupt or unsupported media ({e.strerror})") from None
    return has_audio, has_video


def _check_riff(path: Path) -> None:
    """A WAV whose data chunk declares more bytes than the file holds is truncated."""
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            length = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                if f.tell() + length > size:
                    raise MediaError(
                        f"{path}: truncated (data chunk of {length} bytes, "
                        f"{size - f.tell()} present)"
                    )
                return
            f.seek(length + (length & 1), 1)


def decode_checked(path: Path) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 at the native rate; a file whose decoded length falls short
    of its declared duration (truncated) is a MediaError."""
    import av

    from audiox_turbo.io.audio import load_audio

    _check_riff(path)
    wav, rate = load_audio(path)
    audio = wav.numpy()
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        declared = (
            float(stream.duration * stream.time_base)
            if stream.duration is not None and stream.time_base is not None
            else None
        )
    if declared is not None and audio.shape[1] / rate < declared - 0.1:
        raise MediaError(
            f"{path}: truncated (decoded {audio.shape[1] / rate:.2f} s of {declared:.2f} s)"
        )
    return audio, rate


def windows(mono: np.ndarray, rate: int, cut: CutSettings) -> list[tuple[int, int]]:
    """Sample ranges of the clips of a recording (a range shorter than `min_seconds` is kept
    so that its row records `too_short`, unless other windows exist)."""
    size = round(cut.clip_seconds * rate)
    pieces = (
        silence_split(mono, rate, cut.silence_gap) if cut.split == "silence" else [(0, len(mono))]
    )
    out: list[tuple[int, int]] = []
    for lo, hi in pieces:
        for start in range(lo, hi, size):
            out.append((start, min(start + size, hi)))
    long_enough = [w for w in out if w[1] - w[0] >= cut.min_seconds * rate]
    return long_enough or out[:1]


def _file_row(url: str, order: int, **fields: Any) -> dict[str, Any]:
    return {**ROW_DEFAULTS, "clip_id": clip_id(url, 0), "source": url, "order": order,
            "fingerprint": b"", **fields}  # fmt: skip


def _sidecar_caption(path: Path) -> str:
    sidecar = path.with_suffix(".txt")
    return sidecar.read_text().strip() if sidecar.is_file() else ""


def collect_file(url: str, order: int, cut: CutSettings, out_dir: str) -> list[dict[str, Any]]:
    """Every clip row of one source (see module doc); media go under `out_dir`/clips."""
    try:
        with local_copy(url) as path:
            return _collect_local(url, path, order, cut, Path(out_dir))
    except (MediaError, OSError) as e:
        return [_file_row(url, order, error=str(e).splitlines()[0][:300])]


def _collect_local(
    url: str, path: Path, order: int, cut: CutSettings, out_dir: Path
) -> list[dict[str, Any]]:
    import torch

    from audiox_turbo.io.audio import resample

    has_audio, has_video = probe(path)
    if not has_audio:
        return [_file_row(url, order, has_video=has_video)]
    audio, rate = decode_checked(path)
    mono = audio.mean(axis=0)
    caption = _sidecar_caption(path) if "://" not in url else ""
    rows = []
    for w, (lo, hi) in enumerate(windows(mono, rate, cut)):
        piece = mono[lo:hi]
        clip = clip_id(url, w)
        row = {
            **ROW_DEFAULTS, "clip_id": clip, "source": url, "order": order, "window": w,
            "start": lo / rate, "duration": (hi - lo) / rate, "sample_rate": rate,
            "channels": audio.shape[0], "has_video": has_video, "has_audio": True,
            "source_caption": caption,
        }  # fmt: skip
        row.update(audio_measurements(piece, rate))
        piece16 = resample(torch.from_numpy(np.ascontiguousarray(piece))[None], rate, RATE)[0]
        row["fingerprint"] = fingerprint(piece16.numpy()).tobytes()
        row["pcm_sha1"] = pcm_hash(piece)
        if has_video:
            row.update(video_measurements(str(path), lo / rate, (hi - lo) / rate, piece, rate))
        row["gain_db"] = normalising_gain_db(row["lufs"], row["peak"], cut.target_lufs)
        row["audio"], row["video"] = _write_media(
            out_dir, clip, audio[:, lo:hi], rate, row["gain_db"], path if has_video else None,
            lo / rate, (hi - lo) / rate, cut,
        )  # fmt: skip
        rows.append(row)
    return rows


def _write_media(
    out_dir: Path,
    clip: str,
    audio: np.ndarray,
    rate: int,
    gain_db: float,
    video: Path | None,
    start: float,
    duration: float,
    cut: CutSettings,
) -> tuple[str, str]:
    """Write the normalised clip (FLAC, 24 bit) and its video window (H.264); relative paths."""
    import torch

    from audiox_turbo.data.world.media import write_mp4
    from audiox_turbo.io.audio import save_audio

    audio_rel = f"clips/audio/{clip}.flac"
    scaled = (
        np.clip(audio * 10.0 ** (gain_db / 20.0), -1.0, 1.0) if math.isfinite(gain_db) else audio
    )
    save_audio(out_dir / audio_rel, torch.from_numpy(np.ascontiguousarray(scaled)), rate, "pcm24")
    if video is None:
        return audio_rel, ""
    from audiox_turbo.io.video import load_video_frames

    frames = load_video_frames(video, cut.video_fps, cut.video_size, start, duration)
    video_rel = f"clips/video/{clip}.mp4"
    (out_dir / video_rel).parent.mkdir(parents=True, exist_ok=True)
    write_mp4(out_dir / video_rel, frames.permute(0, 2, 3, 1).numpy(), cut.video_fps)
    return audio_rel, video_rel


def list_sources(sources: list[str], suffixes: frozenset[str]) -> list[str]:
    """Media files under local folders/files or fsspec URLs (folders walked), sorted, by
    suffix; a source that does not exist is a one-line MediaError."""
    import fsspec

    found: list[str] = []
    for src in sources:
        if "://" not in src:
            p = Path(src)
            if p.is_file():
                found.append(str(p))
            elif p.is_dir():
                found += [
                    str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes
                ]
            else:
                raise MediaError(f"{src}: no such file or folder")
            continue
        fs, root = fsspec.core.url_to_fs(src)
        if not fs.exists(root):
            raise MediaError(f"{src}: no such file or folder")
        protocol = src.split("://", 1)[0]
        paths = [root] if fs.isfile(root) else fs.find(root)
        found += [f"{protocol}://{p}" for p in paths if os.path.splitext(p)[1].lower() in suffixes]
    return sorted(set(found))
