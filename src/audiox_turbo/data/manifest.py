"""The JSONL manifest: one `ClipRecord` per line; media paths are relative to the manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from audiox_turbo.atomic import atomic_file
from audiox_turbo.errors import AudioXError

Split = Literal["train", "val", "test"]
TASKS = ("T2A", "T2M", "V2A", "V2M", "TV2A", "TV2M", "inpaint", "continue")


class ClipRecord(BaseModel):
    """One clip: its media, captions and structured labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    audio: str = Field(min_length=1)
    video: str | None = None
    captions: list[str] = Field(default_factory=list)
    duration: float = Field(gt=0)
    sample_rate: int = Field(gt=0)
    channels: int = Field(ge=1, le=8)
    labels: dict[str, Any] = Field(default_factory=dict)
    split: Split = "train"
    source: str = "unknown"

    @field_validator("captions")
    @classmethod
    def _captions_not_blank(cls, v: list[str]) -> list[str]:
        if any(not c.strip() for c in v):
            raise ValueError("captions must not be blank")
        return v

    def audio_path(self, root: str | os.PathLike[str]) -> Path:
        """Absolute audio path, resolving a relative path against the manifest folder."""
        return Path(root) / self.audio

    def video_path(self, root: str | os.PathLike[str]) -> Path | None:
        """Absolute video path, or None when the clip has no video."""
        return None if self.video is None else Path(root) / self.video


def read_manifest(path: str | os.PathLike[str]) -> list[ClipRecord]:
    """All records of a JSONL manifest; a bad line or a repeated id raises an AudioXError
    naming file and line."""
    records = []
    first_line: dict[str, int] = {}
    for lineno, record in _numbered_records(Path(path)):
        if record.id in first_line:
            raise AudioXError(
                f"{path}:{lineno}: id {record.id!r} repeats line {first_line[record.id]}"
            )
        first_line[record.id] = lineno
        records.append(record)
    return records


def manifest_root(path: str | os.PathLike[str]) -> Path:
    """The folder that relative media paths of the manifest at `path` resolve against."""
    return Path(path).resolve().parent


def iter_manifest(path: str | os.PathLike[str]) -> Iterator[ClipRecord]:
    """Records of a JSONL manifest, lazily; blank lines are skipped."""
    for _, record in _numbered_records(Path(path)):
        yield record


def _numbered_records(path: Path) -> Iterator[tuple[int, ClipRecord]]:
    """(line number, record) pairs; errors name the file and the line."""
    if not path.is_file():
        raise AudioXError(f"{path}: manifest not found")
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            yield lineno, parse_record(line, path, lineno)


def parse_record(line: str, path: str | os.PathLike[str], lineno: int) -> ClipRecord:
    """One manifest line as a record; a bad line raises an AudioXError naming file and line."""
    try:
        return ClipRecord.model_validate_json(line)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise AudioXError(f"{path}:{lineno}: {where}: {first['msg']}") from None


def write_manifest(path: str | os.PathLike[str], records: Iterable[ClipRecord]) -> None:
    """Write records as JSONL atomically (temp file in the same folder + rename)."""
    with atomic_file(path) as tmp, tmp.open("w") as f:
        for r in records:
            f.write(json.dumps(r.model_dump(mode="json"), sort_keys=True) + "\n")
