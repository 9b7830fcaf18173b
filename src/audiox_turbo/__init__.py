"""audiox-turbo: anything-to-audio generation in 4 steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AudioXTurbo", "load", "presets"]

if TYPE_CHECKING:
    from audiox_turbo.interface import Pipeline
    from audiox_turbo.pipeline import AudioXTurbo


def __getattr__(name: str) -> Any:
    # Lazy: `import audiox_turbo` (and the CLI's --help) must not import torch.
    if name == "AudioXTurbo":
        from audiox_turbo.pipeline import AudioXTurbo

        return AudioXTurbo
    if name == "presets":
        from audiox_turbo.config import PRESETS

        return sorted(PRESETS)
    raise AttributeError(name)


def load(path_or_preset: str, device: str | None = None, dtype: str | None = None) -> Pipeline:
    """A pipeline from a model directory (native or official) or a preset name (random weights)."""
    from audiox_turbo.loader import load as load_pipeline

    return load_pipeline(path_or_preset, device=device, dtype=dtype)
