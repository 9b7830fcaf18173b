"""`FlowModel`: conditioner + denoiser behind one forward (the network a teacher trains)."""

from __future__ import annotations

import torch
from torch import nn

from audiox_turbo.conditioning.conditioner import Conditioner, Conditions
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.model.denoiser import Denoiser


class FlowModel(nn.Module):
    """Conditioner + denoiser as one module (what DDP/FSDP wrap and the EMA averages)."""

    def __init__(self, conditioner: Conditioner, denoiser: Denoiser) -> None:
        super().__init__()
        self.conditioner = conditioner
        self.denoiser = denoiser

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        inputs: ConditionInputs,
        duration: float,
        x_mask: torch.Tensor | None = None,
        drop: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Velocity (B, D, T) for x_t (B, D, T) at t (B,); x_mask (B, T) bool marks real frames."""
        cond = self.condition(inputs, x_t.shape[-1], duration, drop, generator)
        return self.denoiser(x_t, t, cond, x_mask=x_mask)

    def condition(
        self,
        inputs: ConditionInputs,
        frames: int,
        duration: float,
        drop: bool = False,
        generator: torch.Generator | None = None,
    ) -> Conditions:
        """Conditions for `frames` latent frames (condition dropout when `drop`)."""
        return self.conditioner(inputs, frames, duration, drop, generator)
