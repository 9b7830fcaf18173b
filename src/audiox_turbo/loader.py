"""One loader for every pipeline: a model directory of any variant, or a preset name."""

from __future__ import annotations

import os
from pathlib import Path

from audiox_turbo.interface import Pipeline
from audiox_turbo.model_dir import read_model_config, shipped_model_dir
from audiox_turbo.official.config import OfficialConfig
from audiox_turbo.official.pipeline import OfficialPipeline
from audiox_turbo.pipeline import AudioXTurbo


def load(
    path_or_preset: str | os.PathLike[str],
    device: str | None = None,
    dtype: str | None = None,
) -> Pipeline:
    """The pipeline for a model directory (native or official), else a random-weight preset."""
    if not Path(path_or_preset).exists():
        return AudioXTurbo.from_preset(str(path_or_preset), device=device, dtype=dtype)
    if isinstance(read_model_config(path_or_preset), OfficialConfig):
        return OfficialPipeline.from_pretrained(path_or_preset, device=device, dtype=dtype)
    return AudioXTurbo.from_pretrained(path_or_preset, device=device, dtype=dtype)


def default_model() -> str:
    """What runs when no model is named: the model shipped in the package, else `tiny`."""
    shipped = shipped_model_dir()
    return str(shipped) if shipped is not None else "tiny"
