"""Audio codecs: the Oobleck VAE (Stable Audio Open layout), the iSTFT VAE (Vocos-style) and
the log-mel codec (no network)."""

from audiox_turbo.codec.bottleneck import kl_divergence
from audiox_turbo.codec.build import Codec, build_codec
from audiox_turbo.codec.istft import IstftVAE
from audiox_turbo.codec.mel import LogMelCodec
from audiox_turbo.codec.oobleck import (
    OobleckVAE,
    SnakeBeta,
    WeightNormConv1d,
    WeightNormConvTranspose1d,
    load_oobleck_checkpoint,
)

__all__ = [
    "Codec",
    "IstftVAE",
    "LogMelCodec",
    "OobleckVAE",
    "SnakeBeta",
    "WeightNormConv1d",
    "WeightNormConvTranspose1d",
    "build_codec",
    "kl_divergence",
    "load_oobleck_checkpoint",
]
