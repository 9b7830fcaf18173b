"""The live state of a training run and its checkpoints: save, resume, EMA weights for hooks.

`RunState` holds what a checkpoint captures (trained networks, EMA, optimisers and schedules,
task state, RNG, step, data position) and reads and writes it in the folder layout of
train/checkpoint.py. Under FSDP every process keeps the EMA of its own parameter shards;
checkpoints, validation and export gather full state dicts (EMA applied on every process
before the gather), and the main process runs the task's hooks on unsharded replicas.
Every method that gathers or scatters is collective: all processes call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.errors import AudioXError
from audiox_turbo.train import checkpoint as ckpt
from audiox_turbo.train import sharding
from audiox_turbo.train.data_order import DataPosition
from audiox_turbo.train.ema import EMA
from audiox_turbo.train.task import OptimizerSpec, StepContext, Task


@dataclass
class RunState:
    """A run in progress; `modules` are wrapped (DDP/FSDP) when trained, `replicas` are the
    main process's unsharded copies of FSDP networks (empty otherwise)."""

    accelerator: Any
    task: Task
    specs: dict[str, OptimizerSpec]
    modules: dict[str, nn.Module]
    optimizers: dict[str, Any]
    schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]
    ema: dict[str, EMA]
    generator: torch.Generator
    sharded: bool
    replicas: dict[str, nn.Module] = field(default_factory=dict)
    step: int = 0
    position: DataPosition = field(default_factory=DataPosition)

    def trained_names(self) -> list[str]:
        """Names of the networks some optimiser updates, sorted."""
        return sorted({n for s in self.specs.values() for n in s.modules})

    def context(self) -> StepContext:
        """The step context for the current step."""
        return StepContext(
            step=self.step,
            modules=self.modules,
            generator=self.generator,
            device=self.accelerator.device,
            accelerator=self.accelerator,
            ema=self.ema,
            sharded=self.sharded,
        )

    def ema_target(self, name: str) -> nn.Module:
        """What the EMA of `name` averages: the FSDP module (its local shards) or the network."""
        if self.sharded:
            return self.modules[name]
        return self.accelerator.unwrap_model(self.modules[name])

    @contextlib.contextmanager
    def ema_context(self) -> Iterator[StepContext | None]:
        """The step context with EMA weights for the main process's hooks; None elsewhere.

        Under FSDP every process applies its EMA shards and the full state of each trained
        network is gathered into its unsharded replica, which the context carries instead.
        """
        acc = self.accelerator
        full: dict[str, dict[str, torch.Tensor]] = {}
        if self.sharded:
            for name in self.trained_names():
                gather = self._averaged_model_state if name in self.ema else self._model_state
                full[name] = gather(name)
        if not acc.is_main_process:
            yield None
            return
        ctx = self.context()
        with contextlib.ExitStack() as stack:
            if full:
                ctx.modules = dict(ctx.modules)
                for name, state in full.items():
                    replica = self.replicas[name]
                    replica.load_state_dict(state, strict=True)
                    ctx.modules[name] = replica.to(acc.device)
                    stack.callback(replica.to, "cpu")
            for name, ema in self.ema.items():
                if name not in full:
                    stack.enter_context(ema.applied(ctx.unwrapped(name)))
            yield ctx

    def save(self, root: Path, keep: int) -> Path:
        """Write a checkpoint of the current state into `root` atomically, keep the newest
        `keep`; returns the checkpoint folder."""
        acc = self.accelerator
        if acc.is_main_process:
            ckpt.prepare_staging(root, self.step)
        acc.wait_for_everyone()
        stage = ckpt.staging_dir(root, self.step)
        states = {n: self._model_state(n) for n in self.trained_names()}
        ema_states = {n: self._ema_state(n) for n in self.ema}
        optim_states = {n: self._optimizer_state(n) for n in self.optimizers}
        rng = ckpt.capture_rng({"task": self.generator})
        ckpt.save_object(stage / "rng" / f"rank-{acc.process_index}.pt", rng)
        ckpt.save_object(stage / "task" / f"rank-{acc.process_index}.pt", self.task.state_dict())
        if acc.is_main_process:
            for name, state in states.items():
                ckpt.save_tensors(stage / "models" / f"{name}.safetensors", state)
            for name, state in ema_states.items():
                ckpt.save_tensors(stage / "ema" / f"{name}.safetensors", state)
            for name, state in optim_states.items():
                ckpt.save_object(
                    stage / "optim" / f"{name}.pt",
                    {"optimizer": state, "scheduler": self.schedulers[name].state_dict()},
                )
            extra = {}
            if acc.scaler is not None:
                extra["scaler"] = acc.scaler.state_dict()
            ckpt.save_object(stage / "task.pt", extra)
        acc.wait_for_everyone()
        final = root / ckpt.step_dir_name(self.step)
        positions = self._gather_positions()
        if acc.is_main_process:
            manifest = {
                "step": self.step,
                "world_size": acc.num_processes,
                "sharded": self.sharded,
                "positions": positions,
            }
            write_json_atomic(stage / ckpt.MANIFEST, manifest)
            final = ckpt.commit(root, self.step)
            ckpt.prune(root, keep)
        acc.wait_for_everyone()
        return final

    def load(self, path: Path) -> None:
        """Restore networks, optimisers, schedulers, EMA, task state, RNG and data position."""
        acc = self.accelerator
        manifest = ckpt.read_manifest(path)
        if manifest["world_size"] != acc.num_processes:
            raise AudioXError(
                f"{path}: written by {manifest['world_size']} processes, "
                f"resumed with {acc.num_processes}"
            )
        if manifest["sharded"] != self.sharded:
            layouts = {True: "with FSDP", False: "without FSDP"}
            raise AudioXError(
                f"{path}: written {layouts[manifest['sharded']]}, resumed {layouts[self.sharded]}"
            )
        ema_states = {n: ckpt.load_tensors(path / "ema" / f"{n}.safetensors") for n in self.ema}
        for name in self.trained_names():
            state = ckpt.load_tensors(path / "models" / f"{name}.safetensors")
            if self.sharded and name in ema_states:
                self._load_sharded_ema(name, state, ema_states.pop(name), path)
            self._load_model_state(name, state)
        for name, state in ema_states.items():
            try:
                self.ema[name].load_state_dict(state)
            except ValueError as e:
                raise AudioXError(f"{path / 'ema' / name}.safetensors: {e}") from None
        for name in self.optimizers:
            state = ckpt.load_object(path / "optim" / f"{name}.pt")
            sharding.load_full_optimizer_state(
                self._optimizer_owner(name),
                self.optimizers[name].optimizer,
                state["optimizer"],
                self.sharded,
            )
            self.schedulers[name].load_state_dict(state["scheduler"])
        extra = ckpt.load_object(path / "task.pt")
        task_state = path / "task" / f"rank-{acc.process_index}.pt"
        if not task_state.is_file() and "task" in extra:  # written before it went per process
            self.task.load_state_dict(extra["task"])
        else:
            self.task.load_state_dict(ckpt.load_object(task_state))
        if acc.scaler is not None and "scaler" in extra:
            acc.scaler.load_state_dict(extra["scaler"])
        self.step = int(manifest["step"])
        self.position.epoch, self.position.batch = manifest["positions"][acc.process_index]
        rng = ckpt.load_object(path / "rng" / f"rank-{acc.process_index}.pt")
        ckpt.restore_rng(rng, {"task": self.generator})

    def _model_state(self, name: str) -> dict[str, torch.Tensor]:
        """Full state dict of trained network `name` (collective under FSDP)."""
        return sharding.full_model_state(self.modules[name], self.accelerator, self.sharded)

    def _load_model_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        sharding.load_full_model_state(self.modules[name], state, self.accelerator, self.sharded)

    def _averaged_model_state(self, name: str) -> dict[str, torch.Tensor]:
        """Full state dict of FSDP network `name` with its EMA applied (collective): every
        process swaps in its shard of the average, the full state is gathered, and the
        training weights are swapped back."""
        with self.ema[name].applied(self.modules[name]):
            return self._model_state(name)

    def _ema_state(self, name: str) -> dict[str, torch.Tensor]:
        """`EMA.state_dict()` of `name`; gathered in full under FSDP (collective)."""
        ema = self.ema[name]
        if not (self.sharded and name in self.trained_names()):
            return ema.state_dict()
        state = self._averaged_model_state(name)
        averaged = {k: v for k, v in state.items() if torch.is_floating_point(v)}
        return {**averaged, "__updates__": torch.tensor(ema.updates, dtype=torch.int64)}

    def _load_sharded_ema(
        self,
        name: str,
        model_state: dict[str, torch.Tensor],
        ema_state: dict[str, torch.Tensor],
        checkpoint: Path,
    ) -> None:
        """Reshard a full EMA state of FSDP network `name`: load it into the network (the
        averaged entries over the model state) and take every process's shards as its EMA."""
        expected = {k for k, v in model_state.items() if torch.is_floating_point(v)}
        expected.add("__updates__")
        if set(ema_state) != expected:
            missing, extra = sorted(expected - set(ema_state)), sorted(set(ema_state) - expected)
            raise AudioXError(
                f"{checkpoint / 'ema' / name}.safetensors: EMA state mismatch: "
                f"missing {missing[:3]}, unexpected {extra[:3]}"
            )
        averaged = {k: v for k, v in ema_state.items() if k != "__updates__"}
        self._load_model_state(name, {**model_state, **averaged})
        self.ema[name].assign_from(self.modules[name], int(ema_state["__updates__"]))

    def _optimizer_owner(self, name: str) -> nn.Module:
        """The wrapped networks optimiser `name` updates, behind one module (for FQN keys)."""
        return nn.ModuleDict({m: self.modules[m] for m in self.specs[name].modules})

    def _optimizer_state(self, name: str) -> dict[str, Any]:
        return sharding.full_optimizer_state(
            self._optimizer_owner(name),
            self.optimizers[name].optimizer,
            self.accelerator,
            self.sharded,
        )

    def _gather_positions(self) -> list[list[int]]:
        """Every rank's data position as [[epoch, batch], ...] (collective)."""
        acc = self.accelerator
        pos = torch.tensor([self.position.epoch, self.position.batch], dtype=torch.int64)
        return acc.gather(pos.to(acc.device)).cpu().view(-1, 2).tolist()
