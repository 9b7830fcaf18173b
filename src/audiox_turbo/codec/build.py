"""The codec a `CodecConfig` names: `OobleckVAE` or `IstftVAE`, by `kind`."""

from __future__ import annotations

from audiox_turbo.codec.istft import IstftVAE
from audiox_turbo.codec.oobleck import OobleckVAE
from audiox_turbo.config import CodecConfig

Codec = OobleckVAE | IstftVAE


def build_codec(config: CodecConfig) -> Codec:
    """A freshly initialised codec of `config.kind` (weights from the current torch RNG)."""
    if config.kind == "istft":
        return IstftVAE(config)
    return OobleckVAE(config)
