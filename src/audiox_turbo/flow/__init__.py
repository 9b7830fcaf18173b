"""Rectified-flow maths and samplers (pure tensor code; no model imports)."""

from audiox_turbo.flow.path import (
    eps_from_velocity,
    interpolate,
    length_shift,
    sample_timesteps,
    shift_timesteps,
    velocity_from_x0,
    velocity_target,
    x0_from_velocity,
)
from audiox_turbo.flow.sampling import (
    NFECounter,
    VelocityFn,
    classifier_free_guidance,
    guided_velocity,
    sample_euler,
    sample_heun,
    sample_student,
    student_timesteps,
    teacher_timesteps,
)

__all__ = [
    "NFECounter",
    "VelocityFn",
    "classifier_free_guidance",
    "eps_from_velocity",
    "guided_velocity",
    "interpolate",
    "length_shift",
    "sample_euler",
    "sample_heun",
    "sample_student",
    "sample_timesteps",
    "shift_timesteps",
    "student_timesteps",
    "teacher_timesteps",
    "velocity_from_x0",
    "velocity_target",
    "x0_from_velocity",
]
