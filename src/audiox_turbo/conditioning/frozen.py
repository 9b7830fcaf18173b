"""Frozen pretrained encoders held outside the module tree.

A `FrozenEncoder` is a plain attribute of a conditioner (not a registered submodule), so its
weights never enter the state dict, `.parameters()` or checkpoints; it is loaded on first use
(building a model, even on the meta device, touches no file) and moved to the caller's device.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiox_turbo.errors import ModelLoadError


class FrozenEncoder:
    """Lazily loaded, frozen, eval-mode `nn.Module` shared by copies of its owner."""

    def __init__(self, name: str, load: Callable[[], nn.Module]) -> None:
        self.name = name
        self._load = load
        self._module: nn.Module | None = None

    @property
    def loaded(self) -> bool:
        return self._module is not None

    def get(self, device: torch.device, dtype: torch.dtype) -> nn.Module:
        """The module on `device` in `dtype` (float32 on CPU), loading it on first call."""
        if self._module is None:
            module = self._load()
            module.eval().requires_grad_(False)
            self._module = module
        if device.type == "cpu":
            dtype = torch.float32
        return self._module.to(device=device, dtype=dtype)

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenEncoder:
        # Frozen weights are shared by copies (e.g. an EMA model) instead of duplicated.
        return copy.copy(self)


def resolve_local_dir(path: str | None, env_var: str, what: str) -> Path:
    """A local model directory from `path` or env `env_var`; a one-line error when unusable."""
    chosen = path or os.environ.get(env_var)
    if not chosen:
        raise ModelLoadError(
            f"{what}: no local model directory given; pass a directory path or set {env_var}"
        )
    directory = Path(chosen).expanduser()
    if not (directory / "config.json").is_file():
        raise ModelLoadError(f"{directory}: not a model directory for {what} (no config.json)")
    return directory
