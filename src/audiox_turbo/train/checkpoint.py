"""Atomic training checkpoints: a staging folder renamed into place, keep the last K.

Layout of `checkpoints/step-XXXXXXXX/`: `trainer.json` (step, world size, whether the run was
FSDP-sharded, per-rank data positions; written last into the staging folder),
`models/NAME.safetensors`, `ema/NAME.safetensors` (full, unsharded state dicts also under
FSDP), `optim/NAME.pt` (optimiser + scheduler state), `task.pt` (the gradient scaler's),
`task/rank-R.pt` (each process's `Task.state_dict()`), `rng/rank-R.pt`. A folder only becomes
visible under its final name by `os.replace`, so a reader never sees a partial one.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiox_turbo.errors import AudioXError

STEP_DIR = re.compile(r"^step-(\d{8,})$")
MANIFEST = "trainer.json"


def step_dir_name(step: int) -> str:
    """Folder name of the checkpoint taken after `step` optimiser steps."""
    return f"step-{step:08d}"


def staging_dir(root: str | os.PathLike[str], step: int) -> Path:
    """The hidden folder a checkpoint is assembled in before it is renamed into place."""
    return Path(root) / f".staging-{step_dir_name(step)}"


def prepare_staging(root: str | os.PathLike[str], step: int) -> Path:
    """Create an empty staging folder (removing leftovers of an interrupted write)."""
    stage = staging_dir(root, step)
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "models").mkdir(parents=True)
    (stage / "ema").mkdir()
    (stage / "optim").mkdir()
    (stage / "rng").mkdir()
    (stage / "task").mkdir()
    return stage


def commit(root: str | os.PathLike[str], step: int) -> Path:
    """Publish the staging folder of `step` under its final name; returns the final path."""
    root = Path(root)
    stage = staging_dir(root, step)
    if not (stage / MANIFEST).is_file():
        raise RuntimeError(f"{stage}: staging checkpoint has no {MANIFEST}")
    _fsync_tree(stage)
    final = root / step_dir_name(step)
    if final.exists():
        old = root / f".replaced-{final.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, final)
    _fsync_dir(root)
    return final


def list_checkpoints(root: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root`, oldest first, as (step, path)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and (p / MANIFEST).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def prune(root: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints and stale staging folders."""
    root = Path(root)
    found = list_checkpoints(root)
    for _, path in found[: max(len(found) - max(keep, 1), 0)]:
        shutil.rmtree(path, ignore_errors=True)
    newest = found[-1][0] if found else -1
    for p in root.glob(".staging-step-*"):
        m = STEP_DIR.match(p.name.removeprefix(".staging-"))
        if m and int(m.group(1)) <= newest:
            shutil.rmtree(p, ignore_errors=True)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write a flat tensor dict as safetensors (tensors copied to contiguous CPU memory)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file onto the CPU; a missing or corrupt file raises AudioXError."""
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as e:
        raise AudioXError(f"{path}: cannot read checkpoint tensors ({_one_line(e)})") from None


def save_object(path: Path, obj: Any) -> None:
    """Write tensors/ints/floats/lists/dicts with torch.save (read back with weights_only)."""
    torch.save(obj, path)


def load_object(path: Path) -> Any:
    """Read a `save_object` file with `weights_only=True`; missing or corrupt -> AudioXError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AudioXError(f"{path}: checkpoint file missing") from None
    except Exception as e:
        raise AudioXError(f"{path}: cannot read checkpoint ({_one_line(e)})") from None


def read_manifest(checkpoint: Path) -> dict[str, Any]:
    """The `trainer.json` of a checkpoint folder: step, world_size, sharded (whether written
    under FSDP) and per-rank data positions [[epoch, batch], ...]."""
    path = checkpoint / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        step, world = int(manifest["step"]), int(manifest["world_size"])
        sharded = manifest["sharded"]
        if not isinstance(sharded, bool):
            raise TypeError(f"sharded must be true or false, got {sharded!r}")
        positions = [[int(epoch), int(batch)] for epoch, batch in manifest["positions"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AudioXError(f"{path}: cannot read checkpoint ({_one_line(e)})") from None
    return {"step": step, "world_size": world, "sharded": sharded, "positions": positions}


def _one_line(error: Exception) -> str:
    """An exception's message on one line (torch and json errors can span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """States of python `random`, numpy's global RNG, torch CPU (+CUDA) and named generators."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of `capture_rng`; generators present in both are restored."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state((npst["kind"], keys, npst["pos"], npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        if name in state["generators"]:
            g.set_state(state["generators"][name])


def _fsync_tree(path: Path) -> None:
    """Flush every file under `path` (and the folders) to disk before the rename."""
    for dirpath, _, files in os.walk(path):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
