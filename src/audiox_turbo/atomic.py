"""Atomic writes: readers see the old or the new content, never half of it.

Every temp file is hidden beside its target and named `.{name}.<random>.part`; writers pass
the file format explicitly (the temp name says nothing about it).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audiox_turbo.errors import AudioXError

TEMP_SUFFIX = ".part"


class PendingFile:
    """A temp file `tmp` beside `path` (mode 0644) that `commit` renames onto `path` and
    `discard` deletes; for writers that keep a file open across calls."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX
        )
        os.close(fd)
        self.tmp = Path(tmp)
        self.tmp.chmod(0o644)

    def commit(self) -> Path:
        """Replace `path` by the temp file's content; returns `path`."""
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Delete the temp file; `path` keeps its previous content."""
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp file path beside `path`; on success it replaces `path`.

    On error the temp file is removed and `path` keeps its previous content.
    """
    pending = PendingFile(path)
    try:
        yield pending.tmp
        pending.commit()
    except BaseException:
        pending.discard()
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON (indent 2, trailing newline) to `path` through a temp file + rename."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def check_writable_dir(folder: str | os.PathLike[str]) -> Path:
    """`folder` (created if missing) once a temp file could be made in it; else a one-line
    AudioXError naming it. Run it before long work whose result goes there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=TEMP_SUFFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise AudioXError(f"{folder}: cannot write output there ({reason})") from None
    return folder


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line (a log record) and flush it to disk: a kill loses at most that line."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())


def remove_stale_temps(folder: str | os.PathLike[str]) -> int:
    """Delete the temp files a killed writer left in `folder`; returns how many were removed."""
    folder = Path(folder)
    stale = list(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside `path`; on success it replaces `path`.

    The previous folder stays complete until the new one is; on error the temp folder is removed.
    """
    root = Path(path)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        yield tmp
        tmp.chmod(0o755)
        if root.exists():
            old = root.with_name(f".{root.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
