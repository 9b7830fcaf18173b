"""The model a command runs: --model DIR, --preset NAME, else the shipped model, else `tiny`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audiox_turbo.errors import AudioXError

if TYPE_CHECKING:
    from audiox_turbo.interface import Pipeline


def load_model(model: str | None, preset_name: str | None, device: str, dtype: str) -> Pipeline:
    """A pipeline from --model DIR or --preset NAME; neither: the shipped model, else `tiny`."""
    from audiox_turbo.loader import default_model, load
    from audiox_turbo.model_dir import read_model_config

    if model and preset_name:
        raise AudioXError("give either --model or --preset, not both")
    if model is not None:
        read_model_config(model)  # a missing or broken directory is an error, never a preset
    return load(model or preset_name or default_model(), device=device, dtype=dtype)
