"""Exponential moving average of a module's parameters, kept in float32, with warm-up.

On an FSDP-wrapped module the average covers the parameter shards this process holds (plus
its replicated buffers): every process keeps the EMA of its own shard, which is exact because
the average is elementwise. The training loop gathers the full average when it needs it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import torch
from torch import nn


def ema_decay_at(update: int, decay: float, warmup: int) -> float:
    """Decay used at the `update`-th EMA update (0-based): decay·min(1, update / warmup).

    The first update (0) therefore copies the weights; after `warmup` updates it is `decay`.
    """
    if warmup <= 0:
        return decay
    return decay * min(1.0, update / warmup)


def early_half_share(decay: float, warmup: int, updates: int) -> float:
    """Share of the average after `updates` updates that comes from the first half of them.

    Π β over the second half: 0 when the average follows the weights, near 1 when it still
    remembers where the run started (e.g. decay 0.999 with no warm-up over 400 updates: 0.82).
    """
    share = 1.0
    for update in range(updates // 2, updates):
        share *= ema_decay_at(update, decay, warmup)
    return share


class EMA:
    """Float32 shadow copy of the floating-point parameters and buffers of a module."""

    def __init__(self, module: nn.Module, decay: float, warmup: int = 0) -> None:
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: t.detach().to(torch.float32).clone() for name, t in _averaged_tensors(module)
        }

    @torch.no_grad()
    def update(self, module: nn.Module) -> float:
        """shadow ← β·shadow + (1 − β)·param with β = ema_decay_at(updates); returns β."""
        beta = ema_decay_at(self.updates, self.decay, self.warmup)
        for name, t in _averaged_tensors(module):
            self.shadow[name].lerp_(t.detach().to(torch.float32), 1.0 - beta)
        self.updates += 1
        return beta

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the averaged values into `module` (cast to its dtypes)."""
        for name, t in _averaged_tensors(module):
            t.copy_(self.shadow[name].to(t.dtype))

    @torch.no_grad()
    def assign_from(self, module: nn.Module, updates: int) -> None:
        """Take the current values of `module` as the average reached after `updates` updates."""
        for name, t in _averaged_tensors(module):
            self.shadow[name].copy_(t.detach())
        self.updates = updates

    @contextlib.contextmanager
    def applied(self, module: nn.Module) -> Iterator[nn.Module]:
        """Temporarily swap the averaged weights into `module`; restores the originals after."""
        backup = {name: t.detach().clone() for name, t in _averaged_tensors(module)}
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for name, t in _averaged_tensors(module):
                    t.copy_(backup[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Shadow tensors plus the update count (as a 0-d int64 tensor under `__updates__`)."""
        state = dict(self.shadow)
        state["__updates__"] = torch.tensor(self.updates, dtype=torch.int64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore from `state_dict()`; key sets must match."""
        state = dict(state)
        updates = state.pop("__updates__")
        if set(state) != set(self.shadow):
            missing = sorted(set(self.shadow) - set(state))
            extra = sorted(set(state) - set(self.shadow))
            raise ValueError(f"EMA state mismatch: missing {missing[:3]}, unexpected {extra[:3]}")
        for name, t in state.items():
            self.shadow[name].copy_(t)
        self.updates = int(updates)


def _averaged_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Floating-point parameters and buffers of `module` as this process holds them, by name.

    A plain module yields its state-dict entries. An FSDP module yields its local parameter
    shards (flat, possibly empty) and buffers, without calling `state_dict()`, which would
    gather the full state (a collective).
    """
    from torch.distributed.fsdp import FullyShardedDataParallel

    if isinstance(module, FullyShardedDataParallel):
        named = itertools.chain(module.named_parameters(), module.named_buffers())
    else:
        named = iter(module.state_dict(keep_vars=True).items())
    for name, t in named:
        if torch.is_floating_point(t):
            yield name, t
