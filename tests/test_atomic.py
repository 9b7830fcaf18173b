"""Atomic writes: a target holds the old or the new content, temp files never outlive a writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiox_turbo.atomic import (
    PendingFile,
    atomic_directory,
    atomic_file,
    remove_stale_temps,
    write_json_atomic,
)


def test_atomic_file_replaces_on_success_and_keeps_the_old_content_on_error(
    tmp_path: Path,
) -> None:
    target = tmp_path / "sub" / "a.txt"
    with atomic_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".a.txt.")
        tmp.write_text("new")
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_pending_file_commits_or_discards(tmp_path: Path) -> None:
    kept, dropped = PendingFile(tmp_path / "kept.bin"), PendingFile(tmp_path / "dropped.bin")
    kept.tmp.write_bytes(b"x")
    dropped.tmp.write_bytes(b"y")
    assert kept.commit() == tmp_path / "kept.bin"
    dropped.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.bin"]


def test_remove_stale_temps_deletes_only_the_temps_of_killed_writers(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "done.json", {"a": 1})
    PendingFile(tmp_path / "killed.wav")
    assert remove_stale_temps(tmp_path) == 1
    assert remove_stale_temps(tmp_path / "missing") == 0
    assert [p.name for p in tmp_path.iterdir()] == ["done.json"]


def test_atomic_directory_swaps_a_whole_folder(tmp_path: Path) -> None:
    root = tmp_path / "model"
    for content in ("first", "second"):
        with atomic_directory(root) as tmp:
            (tmp / "w.txt").write_text(content)
    assert (root / "w.txt").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
