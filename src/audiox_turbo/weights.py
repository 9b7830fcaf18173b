"""Safetensors weight files: atomic writes, reads whose failures are one-line errors, and the
key/shape check of a state dict against its module. Every model format builds on these."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from audiox_turbo.atomic import atomic_file
from audiox_turbo.errors import ModelLoadError


def write_safetensors(path: str | os.PathLike[str], state: dict[str, torch.Tensor]) -> None:
    """One safetensors file of `state` (moved to CPU, contiguous, detached), written atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    with atomic_file(path) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})


def read_safetensors(path: str | os.PathLike[str], device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; missing or unreadable: a ModelLoadError naming it.

    Each tensor is a fresh (aligned) copy: the file's data offsets would otherwise change the
    CPU kernels' rounding, so the same weights would compute differently after a save.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing weights file")
    try:
        state = load_file(path, device=device)
    except Exception as e:  # safetensors raises its own error types
        raise ModelLoadError(f"{path}: unreadable safetensors ({e})") from None
    for key in list(state):
        state[key] = state.pop(key).clone()
    return state


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    """Raise a one-line ModelLoadError listing missing, unexpected and mis-shaped keys."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    if problems:
        raise ModelLoadError(f"{file}: weights do not match config.json: {'; '.join(problems)}")
