"""Audio codec: the Oobleck VAE (Stable Audio Open layout)."""

from audiox_turbo.codec.oobleck import (
    OobleckVAE,
    SnakeBeta,
    WeightNormConv1d,
    WeightNormConvTranspose1d,
    kl_divergence,
    load_oobleck_checkpoint,
)

__all__ = [
    "OobleckVAE",
    "SnakeBeta",
    "WeightNormConv1d",
    "WeightNormConvTranspose1d",
    "kl_divergence",
    "load_oobleck_checkpoint",
]
