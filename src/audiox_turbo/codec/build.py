"""The codec a `CodecConfig` names: `OobleckVAE`, `IstftVAE` or `LogMelCodec`, by `kind`."""

from __future__ import annotations

from audiox_turbo.codec.istft import IstftVAE
from audiox_turbo.codec.mel import LogMelCodec
from audiox_turbo.codec.oobleck import OobleckVAE
from audiox_turbo.config import CodecConfig

Codec = OobleckVAE | IstftVAE | LogMelCodec


def build_codec(config: CodecConfig) -> Codec:
    """A freshly initialised codec of `config.kind` (weights from the current torch RNG)."""
    if config.kind == "istft":
        return IstftVAE(config)
    if config.kind == "mel":
        return LogMelCodec(config)
    return OobleckVAE(config)
