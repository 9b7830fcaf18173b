"""The model directory (docs/architecture.md, "Model directory"): config.json + one safetensors
file per component, the native components built from a config, and the shipped model.

Below the pipelines, train/, data/ and eval/: whoever reads or writes a model uses this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from audiox_turbo.atomic import atomic_directory, write_json_atomic
from audiox_turbo.codec.build import build_codec
from audiox_turbo.conditioning.conditioner import Conditioner
from audiox_turbo.config import ModelConfig, from_dict, to_dict
from audiox_turbo.errors import ModelLoadError
from audiox_turbo.model.denoiser import Denoiser
from audiox_turbo.official.config import VARIANT as OFFICIAL_VARIANT
from audiox_turbo.official.config import OfficialConfig
from audiox_turbo.weights import check_state_dict, read_safetensors, write_safetensors

CONFIG_FILE = "config.json"
NATIVE_COMPONENTS = ("codec", "conditioning", "denoiser")


def shipped_model_dir() -> Path | None:
    """The default model shipped in the package assets, if this install has one."""
    path = Path(__file__).parent / "assets" / "default"
    return path if (path / CONFIG_FILE).is_file() else None


TRAINING_FILE = "training.json"


def training_summary(root: str | os.PathLike[str]) -> list[str]:
    """Lines saying what a model directory's weights were trained on (its training.json, which
    `audiox-turbo recipe` writes); empty for presets and models without one."""
    file = Path(root) / TRAINING_FILE
    if not file.is_file():
        return []
    try:
        data = json.loads(file.read_text())
        world = data["world"]
        lines = [
            f"trained by: audiox-turbo recipe {data['recipe']} ({data.get('device', 'cpu')})",
            f"trained on: the embedded world, {world['sources']} sources, "
            f"{world['train_clips']} clips × {world['duration']:g} s (seed {world['seed']})",
        ]
        steps = ", ".join(f"{k} {v}" for k, v in data.get("steps", {}).items())
        if steps:
            lines.append(f"steps: {steps}")
        selection = data.get("selection")
        if selection:
            fd = ", ".join(f"{k} ({v:.1f})" for k, v in selection["fd"].items())
            lines.append(
                f"student: step {selection['step']}, chosen by {selection['rule']} among steps {fd}"
            )
        for name, row in data.get("benchmark", {}).items():
            lines.append(
                f"world benchmark, {name}: class accuracy {row['class_accuracy']:.3f}, "
                f"FD {row['fd']:.1f}"
            )
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{file}: not a valid training record ({e})") from None
    return lines


def read_model_config(root: str | os.PathLike[str]) -> ModelConfig | OfficialConfig:
    """The typed config of a model directory, chosen by its `variant` ("official" or native);
    a missing or invalid file is a one-line ModelLoadError naming it."""
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
        cls = OfficialConfig if data.get("variant") == OFFICIAL_VARIANT else ModelConfig
        return from_dict(cls, data)
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{file}: invalid config ({e})") from None


def native_components(
    config: ModelConfig, seed: int = 0, device: torch.device | str | None = None
) -> dict[str, nn.Module]:
    """Codec, conditioner and denoiser for `config` by component name, built on `device`
    (random weights deterministic in `seed`; on "meta" only shapes, for loading)."""
    device = torch.device(device or "cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
        torch.manual_seed(seed)
        modules = (build_codec(config.codec), Conditioner(config), Denoiser(config))
    return dict(zip(NATIVE_COMPONENTS, modules, strict=True))


def load_native_components(
    root: str | os.PathLike[str],
) -> tuple[ModelConfig, dict[str, nn.Module]]:
    """The config and the loaded (CPU, float32) components of a native model directory."""
    config = read_model_config(root)
    if not isinstance(config, ModelConfig):
        raise ModelLoadError(
            f"{root}: holds the {config.variant!r} variant; load it with audiox_turbo.load()"
        )
    try:
        modules = native_components(config, device="meta")
    except (AttributeError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{Path(root) / CONFIG_FILE}: invalid config ({e})") from None
    for name, module in modules.items():
        file = Path(root) / f"{name}.safetensors"
        state = {k: _widen(v) for k, v in read_safetensors(file).items()}
        check_state_dict(module, state, file)
        module.load_state_dict(state, strict=True, assign=True)
    return config, modules


def _widen(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision stored weights come back as float32 (the modules compute in float32)."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def save_half_precision(
    source: str | os.PathLike[str], out: str | os.PathLike[str], half: tuple[str, ...]
) -> int:
    """Copy native model dir `source` to `out` with the `half` components' floating weights
    stored as float16 (other files as they are); returns the bytes written. Atomic."""
    config, modules = load_native_components(source)
    unknown = sorted(set(half) - set(modules))
    if unknown:
        raise ModelLoadError(f"{source}: no component {unknown}; have {', '.join(modules)}")
    with atomic_directory(out) as tmp:
        write_json_atomic(tmp / CONFIG_FILE, to_dict(config))
        for name, module in modules.items():
            state = module.state_dict()
            if name in half:
                state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            write_safetensors(tmp / f"{name}.safetensors", state)
        extra = Path(source) / TRAINING_FILE
        if extra.is_file():
            (tmp / TRAINING_FILE).write_bytes(extra.read_bytes())
    return sum(f.stat().st_size for f in Path(out).iterdir())


def save_model_dir(
    path: str | os.PathLike[str], config: ModelConfig, modules: dict[str, nn.Module]
) -> None:
    """Write config.json and one safetensors file per named module; atomic per directory."""
    with atomic_directory(path) as tmp:
        write_json_atomic(tmp / CONFIG_FILE, to_dict(config))
        for name, module in modules.items():
            write_safetensors(tmp / f"{name}.safetensors", module.state_dict())
