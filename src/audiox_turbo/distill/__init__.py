"""DMD distillation (flow-matching form) and the diffusion discriminator, generic over networks.

Names resolve lazily from `distill.dmd` and `distill.discriminator`, so importing the package
(e.g. by the `distill` command line) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "DiscriminatorHead": "discriminator",
    "discriminator_logits": "discriminator",
    "gan_discriminator_loss": "discriminator",
    "gan_generator_loss": "discriminator",
    "sample_gan_timesteps": "discriminator",
    "FeatureFn": "dmd",
    "TwoTimescaleSchedule": "dmd",
    "VelocityNetwork": "dmd",
    "backward_simulate": "dmd",
    "bind_condition": "dmd",
    "bind_features": "dmd",
    "distribution_matching_loss": "dmd",
    "dmd_generator_loss": "dmd",
    "dmd_gradient": "dmd",
    "fake_score_loss": "dmd",
    "noised_real_input": "dmd",
    "regression_loss": "dmd",
    "sample_dmd_timesteps": "dmd",
}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'audiox_turbo.distill' has no attribute {name!r}")
    return getattr(importlib.import_module(f"audiox_turbo.distill.{_MODULE_OF[name]}"), name)
