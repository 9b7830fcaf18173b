"""What a training task tells the `Trainer` (train/trainer.py): networks, optimisers, steps.

Subclass `Task` and override what you need; the Trainer does the rest (devices, precision,
DDP/FSDP, accumulation, clipping, schedules, EMA, checkpoints, logging).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiox_turbo.train.ema import EMA


@dataclass(frozen=True)
class OptimizerSpec:
    """One AdamW optimiser over the parameters of the named modules; None = TrainConfig value.

    `update_every`: how many Trainer steps one of its updates spans; its LR schedule runs over
    max_steps // update_every updates.
    """

    modules: tuple[str, ...]
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    update_every: int = 1

    def __post_init__(self) -> None:
        if self.update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {self.update_every}")


@dataclass
class AudioSample:
    """A generated (or reconstructed) clip to log: audio (channels, samples) in [-1, 1]."""

    name: str
    audio: torch.Tensor
    sample_rate: int


@dataclass
class StepContext:
    """What a task sees during a step: networks (wrapped when trained), RNG, position."""

    step: int
    modules: dict[str, nn.Module]
    generator: torch.Generator
    device: torch.device
    accelerator: Any
    ema: dict[str, EMA] = field(default_factory=dict)
    sharded: bool = False

    def unwrapped(self, name: str) -> nn.Module:
        """The bare network `name` (without DDP/FSDP wrapper)."""
        return self.accelerator.unwrap_model(self.modules[name])

    def borrowed(self, name: str) -> nn.Module:
        """Network `name` for a phase that does not train it (e.g. the fake score inside the
        generator step): the FSDP module, which gathers its shards, else the bare network (no
        DDP gradient hooks)."""
        return self.modules[name] if self.sharded else self.unwrapped(name)


class Task:
    """What the Trainer trains. `modules` and `optimizers` and `training_step` are required."""

    def modules(self) -> dict[str, nn.Module]:
        """Every network by name. Those named in an `OptimizerSpec` are trained and wrapped
        (DDP/FSDP); the rest are moved to the device and frozen."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """One `OptimizerSpec` per optimiser, by name (the names `phases` returns)."""
        raise NotImplementedError

    def phases(self, step: int) -> list[str]:
        """Optimiser names to update at `step`, in order (default: all). A two-time-scale
        distillation returns e.g. ["critic"] on most steps, ["critic", "generator"] every k-th."""
        return list(self.optimizers())

    def training_step(self, batch: Any, phase: str, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Losses of one micro-batch for `phase`: "loss" is back-propagated, every value logged.

        Use the networks in `ctx.modules` and draw randomness from `ctx.generator`; run the
        networks `phase` does not train under `torch.no_grad()` (DDP expects a backward else).
        """
        raise NotImplementedError

    def ema_modules(self) -> list[str]:
        """Networks whose float32 EMA is kept (used for validation and export); an EMA is
        updated at the steps where a phase training its network ran."""
        return []

    def batch_stats(self, batch: Any) -> tuple[int, int]:
        """(samples, latent frames) of a micro-batch, for the throughput metrics."""
        return 0, 0

    def validate(self, ctx: StepContext) -> dict[str, float]:
        """Scalars logged as `val/NAME`; runs on the main process with EMA weights applied."""
        return {}

    def samples(self, ctx: StepContext) -> list[AudioSample]:
        """Clips written to `samples/` and TensorBoard; main process, EMA weights applied."""
        return []

    def export(self, directory: Path, ctx: StepContext) -> None:
        """Write a loadable model folder at the end of training (main process, EMA weights)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Extra task state of this process to checkpoint (tensors, numbers, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        return None
