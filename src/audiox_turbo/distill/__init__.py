"""DMD distillation (flow-matching form) and the diffusion discriminator, generic over networks."""

from audiox_turbo.distill.discriminator import (
    DiscriminatorHead,
    discriminator_logits,
    gan_discriminator_loss,
    gan_generator_loss,
    sample_gan_timesteps,
)
from audiox_turbo.distill.dmd import (
    FeatureFn,
    TwoTimescaleSchedule,
    VelocityNetwork,
    backward_simulate,
    bind_condition,
    bind_features,
    bind_guided,
    distribution_matching_loss,
    dmd_generator_loss,
    dmd_gradient,
    fake_score_loss,
    noised_real_input,
    regression_loss,
    sample_dmd_timesteps,
)

__all__ = [
    "DiscriminatorHead",
    "FeatureFn",
    "TwoTimescaleSchedule",
    "VelocityNetwork",
    "backward_simulate",
    "bind_condition",
    "bind_features",
    "bind_guided",
    "discriminator_logits",
    "distribution_matching_loss",
    "dmd_generator_loss",
    "dmd_gradient",
    "fake_score_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "noised_real_input",
    "regression_loss",
    "sample_dmd_timesteps",
    "sample_gan_timesteps",
]
