"""Trained networks under DDP or FSDP: wrapping, full state dicts, gradient norms.

`ACCELERATE_USE_FSDP=true` (as set by `accelerate launch --use_fsdp`) shards the trained
networks with FSDP (version 1, settings from the `FSDP_*` environment). Accelerate only enables
FSDP on accelerators; on the CPU (`cpu=True` under torchrun, gloo) `wrap` shards the networks
itself with the same plugin settings, so the sharded code paths run in CPU tests. Full
(unsharded) state dicts are gathered and scattered collectively: every process calls.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from audiox_turbo.errors import AudioXError


def fsdp_requested_on_cpu(accelerator: Any) -> bool:
    """Whether FSDP was asked for (`ACCELERATE_USE_FSDP`) in a multi-process CPU run, which
    Accelerate runs as plain MULTI_CPU (it enables FSDP on accelerators only)."""
    from accelerate.utils import DistributedType, parse_flag_from_env

    multi_cpu = accelerator.distributed_type == DistributedType.MULTI_CPU
    return multi_cpu and parse_flag_from_env("ACCELERATE_USE_FSDP")


def is_sharded(accelerator: Any, fsdp_on_cpu: bool) -> bool:
    """Whether trained networks are FSDP-sharded (parameters and optimiser state)."""
    from accelerate.utils import DistributedType

    return fsdp_on_cpu or accelerator.distributed_type == DistributedType.FSDP


def wrap(module: nn.Module, accelerator: Any, fsdp_on_cpu: bool) -> nn.Module:
    """`module` prepared for training: by Accelerate, or sharded here for FSDP on the CPU
    with the sharding settings of Accelerate's plugin (strategy, wrap policy, prefetch,
    use_orig_params, sync_module_states; read from the FSDP_* environment)."""
    if not fsdp_on_cpu:
        return accelerator.prepare_model(module)
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import FullyShardedDataParallel

    plugin = FullyShardedDataParallelPlugin()
    if plugin.fsdp_version != 1:
        raise AudioXError(f"FSDP on the CPU needs FSDP_VERSION=1, got {plugin.fsdp_version}")
    plugin.set_auto_wrap_policy(module)
    return FullyShardedDataParallel(
        module,
        sharding_strategy=plugin.sharding_strategy,
        auto_wrap_policy=plugin.auto_wrap_policy,
        backward_prefetch=plugin.backward_prefetch,
        forward_prefetch=plugin.forward_prefetch,
        limit_all_gathers=plugin.limit_all_gathers,
        use_orig_params=plugin.use_orig_params,
        sync_module_states=plugin.sync_module_states,
        device_id=torch.device("cpu"),
    )


def _full_state_options(device: torch.device) -> Any:
    """`StateDictOptions` for full (unsharded) FSDP state dicts.

    On accelerators the full state is offloaded to the CPU of the main process only. On
    the CPU every process gathers it instead: FSDP1's offload moves the unsharded
    parameters "to the CPU" and then frees the storage they already live in (torch 2.13),
    so the gathered tensors would point at freed memory.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=device.type != "cpu")


def full_model_state(module: nn.Module, accelerator: Any, sharded: bool) -> dict[str, Any]:
    """Full state dict of a trained (wrapped) network; collective under FSDP."""
    if not sharded:
        return accelerator.get_state_dict(module)
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(module, options=_full_state_options(accelerator.device))


def load_full_model_state(
    module: nn.Module, state: dict[str, torch.Tensor], accelerator: Any, sharded: bool
) -> None:
    """Load a full (unsharded) state dict into a wrapped network, resharding under FSDP."""
    if not sharded:
        accelerator.unwrap_model(module).load_state_dict(state, strict=True)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True, strict=True))


def full_optimizer_state(
    owner: nn.Module, optimizer: torch.optim.Optimizer, accelerator: Any, sharded: bool
) -> dict[str, Any]:
    """Optimiser state to checkpoint; under FSDP gathered in full (collective, all ranks).

    DDP and single-process runs keep every state replicated, so the local state dict is the
    whole state; FSDP shards it, so it is gathered with parameter-name keys (FQNs under
    `owner`, the networks the optimiser updates) through `torch.distributed.checkpoint`.
    """
    if not sharded:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    options = _full_state_options(accelerator.device)
    return get_optimizer_state_dict(owner, optimizer, options=options)


def load_full_optimizer_state(
    owner: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], sharded: bool
) -> None:
    """Inverse of `full_optimizer_state`: under FSDP every rank keeps its shard of the state."""
    if not sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(owner, optimizer, state, options=options)


def clip_sharded_grads(
    networks: list[nn.Module], params: list[nn.Parameter], max_norm: float
) -> torch.Tensor:
    """Clip the FSDP gradients of `networks` to a global norm (collective); returns the norm.

    One network: its own `clip_grad_norm_`, as Accelerate does. Several: their norms (each
    measured by FSDP across shards, with an infinite bound) combine into one, and every
    gradient in `params` is scaled by the common factor, as `torch.nn.utils.clip_grad_norm_`.
    """
    if len(networks) == 1:
        return networks[0].clip_grad_norm_(max_norm)
    norm = torch.stack([n.clip_grad_norm_(math.inf) for n in networks]).norm()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(scale.to(p.grad.device))
    return norm


def grad_norm(params: list[nn.Parameter]) -> torch.Tensor:
    """Global L2 norm () of the gradients of `params` (unclipped, unsharded)."""
    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())
