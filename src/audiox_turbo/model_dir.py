"""The model directory (DESIGN.md "Checkpoints"): config.json + one safetensors file per
component, read and written here for every variant; and where the shipped model lives.

Below the pipelines, train/, data/ and eval/: whoever reads or writes a model uses this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from audiox_turbo.atomic import atomic_directory, atomic_file, write_json_atomic
from audiox_turbo.config import ModelConfig, from_dict, to_dict
from audiox_turbo.errors import ModelLoadError
from audiox_turbo.official.config import VARIANT as OFFICIAL_VARIANT
from audiox_turbo.official.config import OfficialConfig

CONFIG_FILE = "config.json"
NATIVE_COMPONENTS = ("codec", "conditioning", "denoiser")
ANY_CONFIG = ModelConfig | OfficialConfig


def shipped_model_dir() -> Path | None:
    """The default model shipped in the package assets, if this install has one."""
    path = Path(__file__).parent / "assets" / "default"
    return path if (path / CONFIG_FILE).is_file() else None


def is_model_dir(path: str | os.PathLike[str] | None) -> bool:
    """True if `path` is a directory with a config.json."""
    return path is not None and (Path(path) / CONFIG_FILE).is_file()


def read_model_config(root: str | os.PathLike[str]) -> ModelConfig | OfficialConfig:
    """The typed config of a model directory: `OfficialConfig` for variant "official", else
    `ModelConfig`; a missing or invalid file is a one-line ModelLoadError naming it."""
    root = Path(root)
    file = root / CONFIG_FILE
    if not root.is_dir():
        raise ModelLoadError(f"{root}: model directory not found")
    if not file.is_file():
        raise ModelLoadError(f"{file}: missing (not a model directory)")
    try:
        data = json.loads(file.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("variant") == OFFICIAL_VARIANT:
            return from_dict(OfficialConfig, data)
        return from_dict(ModelConfig, data)
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{file}: invalid config ({e})") from None


def read_component(
    root: str | os.PathLike[str], name: str, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """The tensors of `<root>/<name>.safetensors`; missing or unreadable: ModelLoadError."""
    file = Path(root) / f"{name}.safetensors"
    if not file.is_file():
        raise ModelLoadError(f"{file}: missing weights file")
    try:
        return load_file(file, device=device)
    except Exception as e:  # safetensors raises its own error types
        raise ModelLoadError(f"{file}: unreadable safetensors ({e})") from None


def write_component(path: Path, state: dict[str, torch.Tensor]) -> None:
    """One safetensors file (CPU, contiguous, detached), written atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    with atomic_file(path) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})


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


def load_components(root: str | os.PathLike[str], modules: dict[str, nn.Module]) -> None:
    """Assign each `<name>.safetensors` to its module (built on `meta`), checking every key."""
    for name, module in modules.items():
        state = read_component(root, name)
        check_state_dict(module, state, Path(root) / f"{name}.safetensors")
        # fresh (aligned) copies: safetensors offsets can change the CPU kernels' rounding
        for key in list(state):
            state[key] = state.pop(key).clone()
        module.load_state_dict(state, strict=True, assign=True)


def save_model_dir(
    path: str | os.PathLike[str], config: ANY_CONFIG, modules: dict[str, nn.Module]
) -> None:
    """Write config.json and one safetensors file per named module; atomic per directory."""
    with atomic_directory(path) as tmp:
        write_json_atomic(tmp / CONFIG_FILE, to_dict(config))
        for name, module in modules.items():
            write_component(tmp / f"{name}.safetensors", module.state_dict())
