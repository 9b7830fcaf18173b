"""Check a manifest against its media: every file decodes and matches what the record says.

Every problem becomes one line `manifest:line: id: problem`; checking never stops at the first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from audiox_turbo.data.manifest import ClipRecord, manifest_root, parse_record
from audiox_turbo.errors import AudioXError, MediaError

AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3", ".aiff": "AIFF"}
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}


@dataclass
class ValidationReport:
    """Outcome of `validate_manifest`: how many records, and one line per problem."""

    manifest: Path
    total: int = 0
    problems: list[str] = field(default_factory=list)
    bad_records: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: records checked, bad records, problems."""
        good = self.total - self.bad_records
        return (
            f"{self.manifest}: {self.total} records, {good} good, {self.bad_records} bad "
            f"({len(self.problems)} problems)"
        )


def _audio_format(path: Path) -> str | None:
    """The container soundfile sees in the file, or None when it does not recognise it."""
    import soundfile as sf

    try:
        return str(sf.info(path).format)
    except (sf.LibsndfileError, RuntimeError):
        return None


def check_audio(record: ClipRecord, path: Path, tolerance: float) -> list[str]:
    """Problems with a record's audio file (decodes fully, format, rate, channels, length)."""
    from audiox_turbo.io.audio import load_audio

    if not path.is_file():
        return [f"audio {path}: file not found"]
    problems = []
    expected = AUDIO_FORMATS.get(path.suffix.lower())
    found = _audio_format(path)
    if expected is not None and found is not None and found != expected:
        problems.append(f"audio {path}: extension {path.suffix} but the content is {found}")
    try:
        audio, rate = load_audio(path)
    except MediaError as e:
        return [*problems, f"audio {e}"]
    seconds = audio.shape[1] / rate
    if rate != record.sample_rate:
        problems.append(f"audio {path}: sample rate {rate} Hz, record says {record.sample_rate}")
    if audio.shape[0] != record.channels:
        problems.append(f"audio {path}: {audio.shape[0]} channels, record says {record.channels}")
    if abs(seconds - record.duration) > tolerance:
        problems.append(f"audio {path}: {seconds:.3f} s, record says {record.duration:.3f} s")
    return problems


def video_duration(path: Path) -> tuple[int, float]:
    """Decode every frame of a video: (frame count, seconds up to the end of the last frame)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            frames, end = 0, 0.0
            for frame in container.decode(stream):
                frames += 1
                if frame.time is not None:
                    end = max(end, frame.time + 1.0 / rate)
    except av.FFmpegError as e:
        raise MediaError(f"{path}: cannot decode video ({e})") from None
    if frames == 0:
        raise MediaError(f"{path}: no decodable video frames")
    return frames, end or frames / rate


def check_video(record: ClipRecord, path: Path, tolerance: float) -> list[str]:
    """Problems with a record's video file (extension, decodes fully, length)."""
    if not path.is_file():
        return [f"video {path}: file not found"]
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        return [f"video {path}: extension {path.suffix or '(none)'} is not a video container"]
    if path.stat().st_size == 0:
        return [f"video {path}: empty file"]
    try:
        frames, seconds = video_duration(path)
    except MediaError as e:
        return [f"video {e}"]
    if abs(seconds - record.duration) > tolerance + seconds / frames:
        return [f"video {path}: {seconds:.3f} s, record says {record.duration:.3f} s"]
    return []


def validate_manifest(
    path: str | os.PathLike[str], tolerance: float = 0.05, progress: bool = False
) -> ValidationReport:
    """Decode every audio and video file of a manifest and compare with the records.

    Durations may differ by `tolerance` seconds (video: plus one frame). Unparseable lines and
    repeated ids are problems too.
    """
    from tqdm import tqdm

    path = Path(path)
    if not path.is_file():
        raise AudioXError(f"{path}: manifest not found")
    root = manifest_root(path)
    report = ValidationReport(path)
    seen: dict[str, int] = {}
    lines = path.read_text().splitlines()
    for lineno, line in enumerate(tqdm(lines, desc="validate", disable=not progress), 1):
        if not line.strip():
            continue
        report.total += 1
        try:
            record = parse_record(line, path, lineno)
        except AudioXError as e:
            report.problems.append(str(e))
            report.bad_records += 1
            continue
        problems = []
        if record.id in seen:
            problems.append(f"id repeats line {seen[record.id]}")
        seen.setdefault(record.id, lineno)
        problems += check_audio(record, record.audio_path(root), tolerance)
        video = record.video_path(root)
        if video is not None:
            problems += check_video(record, video, tolerance)
        report.problems += [f"{path}:{lineno}: {record.id}: {p}" for p in problems]
        report.bad_records += bool(problems)
    return report
