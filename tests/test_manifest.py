"""The JSONL manifest: round trip, atomic write, errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiox_turbo.data.manifest import (
    ClipRecord,
    iter_manifest,
    manifest_root,
    read_manifest,
    write_manifest,
)
from audiox_turbo.errors import AudioXError


def record(i: int, **fields: object) -> ClipRecord:
    base: dict[str, object] = {
        "id": f"c{i}",
        "audio": f"audio/c{i}.wav",
        "captions": [f"caption {i}"],
        "duration": 5.0,
        "sample_rate": 16000,
        "channels": 1,
    }
    return ClipRecord(**(base | fields))  # type: ignore[arg-type]


def test_round_trip_and_atomic_write(tmp_path: Path) -> None:
    records = [
        record(0),
        record(1, video="video/c1.mp4", labels={"task": "V2A", "events": [0.5, 1.0]}, split="val"),
    ]
    path = tmp_path / "sub" / "m.jsonl"
    write_manifest(path, records)
    assert read_manifest(path) == records and list(iter_manifest(path)) == records
    assert [p.name for p in path.parent.iterdir()] == ["m.jsonl"]  # no temp file left
    assert manifest_root(path) == path.parent.resolve()
    assert records[1].video_path(tmp_path) == tmp_path / "video/c1.mp4"
    assert records[0].video_path(tmp_path) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"m\.jsonl:2: record: Invalid JSON"),
        ('{"id": "x"}', r"m\.jsonl:2: audio: Field required"),
        (record(9, duration=1.0).model_dump_json().replace("1.0", "-1.0"), r":2: duration"),
        (record(9).model_dump_json()[:-1] + ', "extra": 1}', r":2: extra"),
        (record(0).model_dump_json(), r"m\.jsonl:2: id 'c0' repeats line 1"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(record(0).model_dump_json() + "\n" + line + "\n\n")
    with pytest.raises(AudioXError, match=message) as e:
        read_manifest(path)
    assert "\n" not in str(e.value)


def test_missing_manifest_and_blank_captions(tmp_path: Path) -> None:
    with pytest.raises(AudioXError, match=r"nope\.jsonl: manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="blank"):
        record(0, captions=["  "])
