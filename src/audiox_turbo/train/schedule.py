"""Learning-rate schedules: linear warm-up, then cosine decay, inverse square root or constant."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCHEDULES = ("cosine", "inverse_sqrt", "constant")


def lr_factor(step: int, schedule: str, warmup_steps: int, max_steps: int) -> float:
    """Multiplier of the peak learning rate at optimiser step `step` (0-based).

    Warm-up is linear from 1/warmup to 1; cosine decays to 0 at `max_steps`; inverse-sqrt
    decays as sqrt(warmup / step) after the warm-up.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "inverse_sqrt":
        return math.sqrt(max(warmup_steps, 1) / max(step, 1))
    span = max(max_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, warmup_steps: int, max_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepping once per optimiser update with `lr_factor`."""
    lr_factor(0, schedule, warmup_steps, max_steps)
    factor: Callable[[int], float] = lambda s: lr_factor(s, schedule, warmup_steps, max_steps)  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
