"""The training engine: a reusable Accelerate loop driven by a `Task`.

The engine owns everything generic: process group (DDP/FSDP through `accelerate launch` or
torchrun, gloo on CPU), mixed precision, data order and sharding, gradient accumulation,
clipping, AdamW + schedules, float32 EMA, atomic checkpoints (periodic and on SIGTERM /
SIGINT) with exact resume, TensorBoard and a progress bar. A `Task` says what to train.

Task protocol (subclass `Task`, override what you need):

- `modules()`: every network by name. Those named in an `OptimizerSpec` are trained and
  wrapped by Accelerate (DDP/FSDP); the rest are moved to the device and left frozen.
- `optimizers()`: one `OptimizerSpec` per optimiser (AdamW): the module names it updates,
  optional overrides of lr / betas / weight decay / clipping, and `update_every` (how many
  engine steps one of its updates spans; its LR schedule runs over max_steps // update_every).
- `phases(step)`: optimiser names to update at this step, in order (default: all). A
  two-time-scale distillation returns e.g. `["critic"]` on most steps and
  `["critic", "generator"]` every k-th step (and gives the generator `update_every=k`).
- `training_step(batch, phase, ctx)`: losses of one micro-batch for `phase`; the key
  `"loss"` is back-propagated into that phase's optimiser, every value is logged. Use the
  wrapped networks in `ctx.modules` and draw randomness from `ctx.generator`. Run networks
  that `phase` does not train under `torch.no_grad()` (DDP expects a backward otherwise).
- `ema_modules()`: names of networks whose float32 EMA is kept (and used for validation
  and export); an EMA is updated at the steps where a phase that trains its network ran.
- `batch_stats(batch)`: (samples, latent frames) of a micro-batch, for throughput.
- `validate(ctx)`, `samples(ctx)`: run on the main process at `sample_every` with EMA
  weights applied; return scalars and `AudioSample`s (written to `samples/` and TensorBoard).
- `export(directory, ctx)`: write a loadable model folder at the end of training.
- `state_dict()` / `load_state_dict()`: any extra task state to checkpoint.

FSDP. `ACCELERATE_USE_FSDP=true` (as set by `accelerate launch --use_fsdp`) shards the trained
networks with FSDP (version 1, settings from the `FSDP_*` environment). Accelerate 1.15 only
enables FSDP on accelerators; on the CPU (`cpu=True` under torchrun, gloo) the engine wraps the
networks itself with the same plugin settings, so the sharded code paths run in CPU tests.
Under FSDP every process keeps the EMA of its own parameter shards; checkpoints, validation
and export gather full state dicts (EMA applied on every process before the gather), and the
main process runs `validate`/`samples`/`export` on unsharded copies of the trained networks.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.errors import AudioXError
from audiox_turbo.train import checkpoint as ckpt
from audiox_turbo.train.ema import EMA
from audiox_turbo.train.run_config import TrainConfig
from audiox_turbo.train.schedule import build_scheduler

PRECISIONS = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


@dataclass(frozen=True)
class OptimizerSpec:
    """One AdamW optimiser over the parameters of the named modules; None = TrainConfig value."""

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
    """Base class of what the engine trains; see the module docstring for the protocol."""

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, OptimizerSpec]:
        raise NotImplementedError

    def phases(self, step: int) -> list[str]:
        return list(self.optimizers())

    def training_step(self, batch: Any, phase: str, ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def ema_modules(self) -> list[str]:
        return []

    def batch_stats(self, batch: Any) -> tuple[int, int]:
        return 0, 0

    def validate(self, ctx: StepContext) -> dict[str, float]:
        return {}

    def samples(self, ctx: StepContext) -> list[AudioSample]:
        return []

    def export(self, directory: Path, ctx: StepContext) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


@dataclass(frozen=True)
class RunPaths:
    """A run folder: `config.json`, `checkpoints/`, `logs/`, `samples/`, `model/` (export)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def metrics(self) -> Path:
        return self.logs / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def export(self) -> Path:
        return self.root / "model"


@dataclass
class TrainResult:
    """How a `Trainer.fit` call ended."""

    step: int
    interrupted: bool
    checkpoint: Path | None


@dataclass
class DataPosition:
    """Where the data stream is: epoch and micro-batches consumed within it (this rank)."""

    epoch: int = 0
    batch: int = 0


class EpochShardSampler(Sampler[int]):
    """Seeded permutation per epoch, strided over ranks, trimmed to whole global batches.

    Starts `skip` indices into this rank's share, so a resumed run sees the same order.
    """

    def __init__(
        self, size: int, batch_size: int, rank: int, world: int, seed: int, epoch: int, skip: int
    ) -> None:
        self.size, self.batch_size, self.rank, self.world = size, batch_size, rank, world
        self.seed, self.epoch, self.skip = seed, epoch, skip

    def batches_per_epoch(self) -> int:
        return self.size // (self.batch_size * self.world)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g)
        mine = order[self.rank :: self.world][: self.batches_per_epoch() * self.batch_size]
        return iter(mine[self.skip :].tolist())

    def __len__(self) -> int:
        return max(self.batches_per_epoch() * self.batch_size - self.skip, 0)


class EpochChainBatchSampler(Sampler[list[Any]]):
    """Endless batches: the `EpochShardSampler` orders of epoch after epoch, from `start`.

    Keys are `(epoch, index)` when `keyed_by_epoch` (datasets such as `ClipDataset` whose
    random crops depend on the epoch), else plain indices. One loader serves every epoch, so
    worker processes start once and prefetching runs across epoch boundaries.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        rank: int,
        world: int,
        seed: int,
        start: DataPosition,
        keyed_by_epoch: bool,
    ) -> None:
        self.size, self.batch_size, self.rank, self.world = size, batch_size, rank, world
        self.seed, self.keyed_by_epoch = seed, keyed_by_epoch
        self.start = DataPosition(start.epoch, start.batch)

    def batches_per_epoch(self) -> int:
        return self.size // (self.batch_size * self.world)

    def __iter__(self) -> Iterator[list[Any]]:
        epoch, skip = self.start.epoch, self.start.batch * self.batch_size
        while True:
            order = EpochShardSampler(
                self.size, self.batch_size, self.rank, self.world, self.seed, epoch, skip
            )
            keys = [(epoch, i) if self.keyed_by_epoch else i for i in order]
            for first in range(0, len(keys), self.batch_size):
                yield keys[first : first + self.batch_size]
            epoch, skip = epoch + 1, 0


def _seed_worker(worker_id: int) -> None:
    """Seed python and numpy RNGs of a loader worker from its torch seed."""
    import random

    import numpy as np

    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class Trainer:
    """Runs a `Task` under Accelerate with checkpoints, resume, logging and EMA."""

    def __init__(
        self,
        task: Task,
        config: TrainConfig,
        run_dir: str | os.PathLike[str],
        dataset: Dataset | IterableDataset,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        run_config: dict[str, Any] | None = None,
        progress: bool = True,
        cpu: bool = False,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        if config.precision not in PRECISIONS:
            raise AudioXError(
                f"precision {config.precision!r} unknown; use one of {', '.join(PRECISIONS)}"
            )
        self.task, self.config, self.paths = task, config, RunPaths(Path(run_dir))
        self.dataset, self.collate_fn, self.progress = dataset, collate_fn, progress
        self.accelerator = Accelerator(
            mixed_precision=PRECISIONS[config.precision],
            cpu=cpu,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        acc = self.accelerator
        self.rank, self.world = acc.process_index, acc.num_processes
        self.fsdp_on_cpu = _fsdp_requested_on_cpu(acc)
        if self.fsdp_on_cpu and config.precision != "fp32":
            raise AudioXError(
                f"precision {config.precision!r} with FSDP on the CPU is not supported; use fp32"
            )
        self.run_config = run_config
        if acc.is_main_process:
            for d in (self.paths.checkpoints, self.paths.logs, self.paths.samples):
                d.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        self._build()
        self.step = 0
        self.position = DataPosition()
        self._stop_requested = False
        self._writer: Any = None

    def _build(self) -> None:
        acc, cfg = self.accelerator, self.config
        modules = self.task.modules()
        specs = self.specs = self.task.optimizers()
        trained = [n for s in specs.values() for n in s.modules]
        unknown = sorted(set(trained) - set(modules))
        if unknown:
            raise ValueError(f"optimizer specs name unknown modules {unknown}")
        names = sorted(set(trained))
        self.replicas: dict[str, nn.Module] = {}
        if self.sharded and acc.is_main_process:
            self.replicas = {n: copy.deepcopy(modules[n]) for n in names}
        wrapped = {n: self._wrap(modules[n]) for n in names}
        self.modules: dict[str, nn.Module] = {}
        for name, module in modules.items():
            if name in wrapped:
                self.modules[name] = wrapped[name]
            else:
                module.requires_grad_(False)
                self.modules[name] = module.to(acc.device)
        self.optimizers: dict[str, Any] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        self.clip: dict[str, float] = {}
        self.params: dict[str, list[nn.Parameter]] = {}
        for name, spec in specs.items():
            params = [
                p for m in spec.modules for p in self.modules[m].parameters() if p.requires_grad
            ]
            opt = torch.optim.AdamW(
                params,
                lr=cfg.lr if spec.lr is None else spec.lr,
                betas=tuple(cfg.betas if spec.betas is None else spec.betas),
                weight_decay=cfg.weight_decay if spec.weight_decay is None else spec.weight_decay,
            )
            self.params[name] = params
            self.optimizers[name] = acc.prepare_optimizer(opt)
            self.schedulers[name] = build_scheduler(
                self.optimizers[name].optimizer,
                cfg.schedule,
                cfg.warmup_steps // spec.update_every,
                cfg.max_steps // spec.update_every,
            )
            self.clip[name] = cfg.grad_clip if spec.grad_clip is None else spec.grad_clip
        self.ema = {
            n: EMA(self._ema_target(n), cfg.ema_decay, cfg.ema_warmup)
            for n in self.task.ema_modules()
        }
        self.generator = torch.Generator(device=acc.device)
        self.generator.manual_seed(cfg.seed * 7919 + self.rank + 1)

    def _wrap(self, module: nn.Module) -> nn.Module:
        """`module` prepared for training: by Accelerate, or sharded here for FSDP on the CPU
        with the sharding settings of Accelerate's plugin (strategy, wrap policy, prefetch,
        use_orig_params, sync_module_states; read from the FSDP_* environment)."""
        if not self.fsdp_on_cpu:
            return self.accelerator.prepare_model(module)
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

    def _ema_target(self, name: str) -> nn.Module:
        """What the EMA of `name` averages: the FSDP module (its local shards) or the network."""
        if self.sharded:
            return self.modules[name]
        return self.accelerator.unwrap_model(self.modules[name])

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

    def fit(self, max_steps: int | None = None, resume: bool = False) -> TrainResult:
        """Train until `max_steps` (default TrainConfig.max_steps) or a stop signal.

        Without `resume` the run folder must hold no checkpoints (AudioXError otherwise).
        """
        acc, cfg = self.accelerator, self.config
        total = cfg.max_steps if max_steps is None else max_steps
        if not resume and ckpt.latest_checkpoint(self.paths.checkpoints) is not None:
            raise AudioXError(
                f"{self.paths.root}: run folder already has checkpoints; "
                "pass --resume or use a new --out"
            )
        if acc.is_main_process and self.run_config is not None:
            write_json_atomic(self.paths.config, self.run_config)
        acc.wait_for_everyone()
        if resume:
            self.load_latest()
        last_ckpt = ckpt.latest_checkpoint(self.paths.checkpoints)
        previous = self._install_signal_handlers()
        bar = self._progress_bar(total)
        window = _Window()
        batches = self._micro_batches()
        try:
            while self.step < total:
                metrics = self._train_step(batches, window)
                self.step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4g}")
                self._log_step(metrics, window)
                if cfg.sample_every > 0 and self.step % cfg.sample_every == 0:
                    self.validate_and_sample()
                stop = self._stop_agreed()
                if stop or (cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0):
                    last_ckpt = self.save_checkpoint()
                if stop:
                    return TrainResult(self.step, True, last_ckpt)
            if last_ckpt is None or ckpt.step_dir_name(self.step) != last_ckpt.name:
                last_ckpt = self.save_checkpoint()
            if cfg.sample_every > 0 and self.step % cfg.sample_every != 0:
                self.validate_and_sample()
            self.export()
            return TrainResult(self.step, False, last_ckpt)
        finally:
            if bar is not None:
                bar.close()
            self._restore_signal_handlers(previous)
            if self._writer is not None:
                self._writer.flush()
            acc.wait_for_everyone()

    def _train_step(self, batches: Iterator[Any], window: _Window) -> dict[str, float]:
        acc, cfg = self.accelerator, self.config
        t0 = time.perf_counter()
        micro = []
        for _ in range(max(cfg.grad_accum, 1)):
            micro.append(next(batches))
        t_data = time.perf_counter() - t0
        samples = frames = 0
        for b in micro:
            s, f = self.task.batch_stats(b)
            samples, frames = samples + s, frames + f
        ctx = self.context()
        logged: dict[str, float] = {}
        updated: set[str] = set()
        for phase in self.task.phases(self.step):
            opt = self.optimizers[phase]
            spec = self.specs[phase]
            updated.update(spec.modules)
            sums: dict[str, float] = {}
            for i, b in enumerate(micro):
                last = i == len(micro) - 1
                with self._no_sync(spec.modules, not last):
                    losses = self.task.training_step(b, phase, ctx)
                    acc.backward(losses["loss"] / len(micro))
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(micro)
            if self.sharded:
                bound = self.clip[phase] if self.clip[phase] > 0 else math.inf
                norm = self._clip_sharded(phase, bound)
            elif self.clip[phase] > 0:
                norm = acc.clip_grad_norm_(self.params[phase], self.clip[phase])
            else:
                norm = _grad_norm(self.params[phase])
            opt.step()
            self.schedulers[phase].step()
            for m in self.modules.values():
                m.zero_grad(set_to_none=True)
            prefix = "" if len(self.optimizers) == 1 else f"{phase}/"
            logged.update({f"{prefix}{k}": v for k, v in sums.items()})
            logged[f"grad_norm/{phase}"] = float(norm)
            logged[f"lr/{phase}"] = self.schedulers[phase].get_last_lr()[0]
        for name, ema in self.ema.items():
            if name in updated:
                ema.update(self._ema_target(name))
        elapsed = time.perf_counter() - t0
        window.add(elapsed, t_data, samples * self.world, frames * self.world)
        logged["perf/step_s"] = elapsed
        logged["perf/data_s"] = t_data
        return logged

    def _clip_sharded(self, phase: str, max_norm: float) -> torch.Tensor:
        """Clip the FSDP gradients of `phase` to a global norm (collective); returns the norm.

        One network: its own `clip_grad_norm_`, as Accelerate does. Several: their norms
        (each measured by FSDP across shards, with an infinite bound) combine into one, and
        every gradient is scaled by the common factor, as `torch.nn.utils.clip_grad_norm_`.
        """
        self.accelerator.unscale_gradients()
        networks = [self.modules[m] for m in self.specs[phase].modules]
        if len(networks) == 1:
            return networks[0].clip_grad_norm_(max_norm)
        norm = torch.stack([n.clip_grad_norm_(math.inf) for n in networks]).norm()
        scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for p in self.params[phase]:
            if p.grad is not None:
                p.grad.mul_(scale.to(p.grad.device))
        return norm

    @contextlib.contextmanager
    def _no_sync(self, names: tuple[str, ...], skip_sync: bool) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if skip_sync and self.world > 1:
                for n in names:
                    stack.enter_context(self.accelerator.no_sync(self.modules[n]))
            yield

    def _micro_batches(self) -> Iterator[Any]:
        """Endless stream of micro-batches, advancing `self.position` as it goes."""
        if not isinstance(self.dataset, IterableDataset):
            yield from self._map_batches()
            return
        cfg = self.config
        while True:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.position.epoch)
            loader = self._iterable_loader(self.position)
            produced = False
            for batch in loader:
                produced = True
                self.position.batch += 1
                yield batch
            if not produced and self.position.batch == 0:
                raise AudioXError(
                    f"dataset too small: {_size(self.dataset)} items cannot fill one batch of "
                    f"{cfg.batch_size} on each of {self.world} processes"
                )
            self.position = DataPosition(self.position.epoch + 1, 0)

    def _map_batches(self) -> Iterator[Any]:
        """Map-style data through one loader spanning epochs (workers and prefetch persist)."""
        cfg = self.config
        sampler = EpochChainBatchSampler(
            len(self.dataset),  # type: ignore[arg-type]
            cfg.batch_size,
            self.rank,
            self.world,
            cfg.seed,
            self.position,
            keyed_by_epoch=hasattr(self.dataset, "set_epoch"),
        )
        per_epoch = sampler.batches_per_epoch()
        if per_epoch == 0:
            raise AudioXError(
                f"dataset too small: {_size(self.dataset)} items cannot fill one batch of "
                f"{cfg.batch_size} on each of {self.world} processes"
            )
        loader = DataLoader(self.dataset, batch_sampler=sampler, **self._loader_options())
        for batch in loader:
            self.position.batch += 1
            if self.position.batch == per_epoch:
                self.position = DataPosition(self.position.epoch + 1, 0)
            yield batch

    def _loader_options(self) -> dict[str, Any]:
        cfg, pos = self.config, self.position
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + pos.epoch * 101 + self.rank)
        return dict(
            collate_fn=self.collate_fn,
            num_workers=cfg.num_workers,
            worker_init_fn=_seed_worker,
            generator=g,
            pin_memory=self.accelerator.device.type == "cuda",
        )

    def _iterable_loader(self, pos: DataPosition) -> Iterator[Any]:
        cfg = self.config
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, **self._loader_options())
        it = iter(loader)
        for _ in range(pos.batch):
            next(it, None)
        return it

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current state atomically (collective: all ranks call it)."""
        acc = self.accelerator
        root = self.paths.checkpoints
        if acc.is_main_process:
            ckpt.prepare_staging(root, self.step)
        acc.wait_for_everyone()
        stage = ckpt.staging_dir(root, self.step)
        states = {n: self._model_state(n) for n in self._trained_names()}
        ema_states = {n: self._ema_state(n) for n in self.ema}
        optim_states = {n: self._optimizer_state(n) for n in self.optimizers}
        ckpt.save_object(
            stage / "rng" / f"rank-{self.rank}.pt", ckpt.capture_rng({"task": self.generator})
        )
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
            extra = {"task": self.task.state_dict()}
            if acc.scaler is not None:
                extra["scaler"] = acc.scaler.state_dict()
            ckpt.save_object(stage / "task.pt", extra)
        acc.wait_for_everyone()
        final = root / ckpt.step_dir_name(self.step)
        if acc.is_main_process:
            manifest = {
                "step": self.step,
                "world_size": self.world,
                "sharded": self.sharded,
                "positions": self._gather_positions(),
            }
            write_json_atomic(stage / ckpt.MANIFEST, manifest)
            final = ckpt.commit(root, self.step)
            ckpt.prune(root, self.config.keep_checkpoints)
        else:
            self._gather_positions()
        acc.wait_for_everyone()
        return final

    @property
    def sharded(self) -> bool:
        """Whether trained networks are FSDP-sharded (parameters and optimiser state)."""
        from accelerate.utils import DistributedType

        return self.fsdp_on_cpu or self.accelerator.distributed_type == DistributedType.FSDP

    def _full_state_options(self) -> Any:
        """`StateDictOptions` for full (unsharded) FSDP state dicts.

        On accelerators the full state is offloaded to the CPU of the main process only. On
        the CPU every process gathers it instead: FSDP1's offload moves the unsharded
        parameters "to the CPU" and then frees the storage they already live in (torch 2.13),
        so the gathered tensors would point at freed memory.
        """
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        offload = self.accelerator.device.type != "cpu"
        return StateDictOptions(full_state_dict=True, cpu_offload=offload)

    def _model_state(self, name: str) -> dict[str, torch.Tensor]:
        """Full state dict of trained network `name` (collective under FSDP)."""
        if not self.sharded:
            return self.accelerator.get_state_dict(self.modules[name])
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.modules[name], options=self._full_state_options())

    def _averaged_model_state(self, name: str) -> dict[str, torch.Tensor]:
        """Full state dict of FSDP network `name` with its EMA applied (collective).

        Every process swaps its shard of the average into the network, the full state is
        gathered, and the training weights are swapped back.
        """
        with self.ema[name].applied(self.modules[name]):
            return self._model_state(name)

    def _ema_state(self, name: str) -> dict[str, torch.Tensor]:
        """`EMA.state_dict()` of `name`; gathered in full under FSDP (collective)."""
        ema = self.ema[name]
        if not (self.sharded and name in self._trained_names()):
            return ema.state_dict()
        state = self._averaged_model_state(name)
        averaged = {k: v for k, v in state.items() if torch.is_floating_point(v)}
        return {**averaged, "__updates__": torch.tensor(ema.updates, dtype=torch.int64)}

    def _optimizer_owner(self, name: str) -> nn.Module:
        """The wrapped networks optimiser `name` updates, behind one module (for FQN keys)."""
        return nn.ModuleDict({m: self.modules[m] for m in self.specs[name].modules})

    def _optimizer_state(self, name: str) -> dict[str, Any]:
        """Optimiser state to checkpoint; under FSDP gathered in full (collective, all ranks).

        DDP and single-process runs keep every state replicated, so the local state dict is
        the whole state; FSDP shards it, so it is gathered with parameter-name keys through
        `torch.distributed.checkpoint.state_dict` (only the main process writes it).
        """
        opt = self.optimizers[name].optimizer
        if not self.sharded:
            return opt.state_dict()
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        options = self._full_state_options()
        return get_optimizer_state_dict(self._optimizer_owner(name), opt, options=options)

    def _load_optimizer_state(self, name: str, state: dict[str, Any]) -> None:
        """Inverse of `_optimizer_state`: under FSDP every rank keeps its shard of the state."""
        opt = self.optimizers[name].optimizer
        if not self.sharded:
            opt.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(self._optimizer_owner(name), opt, state, options=options)

    def _load_model_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        """Load a full (unsharded) state dict into network `name`, resharding under FSDP."""
        if not self.sharded:
            self.accelerator.unwrap_model(self.modules[name]).load_state_dict(state, strict=True)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        options = StateDictOptions(full_state_dict=True, strict=True)
        set_model_state_dict(self.modules[name], state, options=options)

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

    def _gather_positions(self) -> list[list[int]]:
        pos = torch.tensor([self.position.epoch, self.position.batch], dtype=torch.int64)
        gathered = self.accelerator.gather(pos.to(self.accelerator.device)).cpu().view(-1, 2)
        return gathered.tolist()

    def load_latest(self) -> Path | None:
        """Restore the newest complete checkpoint of the run, if any; returns its path."""
        path = ckpt.latest_checkpoint(self.paths.checkpoints)
        if path is None:
            return None
        self.load_checkpoint(path)
        return path

    def load_checkpoint(self, path: Path) -> None:
        """Restore models, optimisers, schedulers, EMA, task state, RNG and data position."""
        acc = self.accelerator
        manifest = ckpt.read_manifest(path)
        if manifest["world_size"] != self.world:
            raise AudioXError(
                f"{path}: written by {manifest['world_size']} processes, resumed with {self.world}"
            )
        if manifest["sharded"] != self.sharded:
            layouts = {True: "with FSDP", False: "without FSDP"}
            raise AudioXError(
                f"{path}: written {layouts[manifest['sharded']]}, resumed {layouts[self.sharded]}"
            )
        trained = self._trained_names()
        ema_states = {n: ckpt.load_tensors(path / "ema" / f"{n}.safetensors") for n in self.ema}
        for name in trained:
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
            self._load_optimizer_state(name, state["optimizer"])
            self.schedulers[name].load_state_dict(state["scheduler"])
        extra = ckpt.load_object(path / "task.pt")
        self.task.load_state_dict(extra["task"])
        if acc.scaler is not None and "scaler" in extra:
            acc.scaler.load_state_dict(extra["scaler"])
        self.step = int(manifest["step"])
        epoch, batch = manifest["positions"][self.rank]
        self.position = DataPosition(int(epoch), int(batch))
        ckpt.restore_rng(
            ckpt.load_object(path / "rng" / f"rank-{self.rank}.pt"), {"task": self.generator}
        )
        if acc.is_main_process:
            _truncate_metrics(self.paths.metrics, self.step)
        acc.wait_for_everyone()

    def validate_and_sample(self) -> dict[str, float]:
        """Run the task's validation and sample hooks on the main process with EMA weights."""
        results: dict[str, float] = {}
        with self._ema_context() as ctx:
            if ctx is not None:
                was_training = {n: m.training for n, m in ctx.modules.items()}
                for m in ctx.modules.values():
                    m.eval()
                with torch.no_grad():
                    results = self.task.validate(ctx)
                    clips = self.task.samples(ctx)
                for n, m in ctx.modules.items():
                    m.train(was_training[n])
                self._write_validation(results, clips)
        self.accelerator.wait_for_everyone()
        return results

    def export(self) -> None:
        """Export the final (EMA) model folder to `run/model` on the main process."""
        with self._ema_context() as ctx:
            if ctx is not None:
                self.task.export(self.paths.export, ctx)
        self.accelerator.wait_for_everyone()

    @contextlib.contextmanager
    def _ema_context(self) -> Iterator[StepContext | None]:
        """The step context with EMA weights for the main process's hooks; None elsewhere.

        Collective under FSDP: every process applies its EMA shards and the full state of
        each trained network is gathered into an unsharded copy (on the main process only),
        which the context carries instead of the FSDP module.
        """
        acc = self.accelerator
        full: dict[str, dict[str, torch.Tensor]] = {}
        if self.sharded:
            for name in self._trained_names():
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

    def _trained_names(self) -> list[str]:
        return sorted({n for s in self.specs.values() for n in s.modules})

    def _stop_agreed(self) -> bool:
        if self.world == 1:
            return self._stop_requested
        flag = torch.tensor([1.0 if self._stop_requested else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _install_signal_handlers(self) -> dict[int, Any]:
        def request_stop(signum: int, frame: Any) -> None:
            self._stop_requested = True

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):
                previous[sig] = signal.signal(sig, request_stop)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _progress_bar(self, total: int) -> Any:
        if not (self.progress and self.accelerator.is_main_process):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=self.step, desc="train", dynamic_ncols=True)

    def _log_step(self, metrics: dict[str, float], window: _Window) -> None:
        if not self.accelerator.is_main_process:
            return
        record = {"step": self.step, **metrics}
        self.paths.metrics.parent.mkdir(parents=True, exist_ok=True)
        with self.paths.metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")
        window.accumulate(metrics)
        if self.config.log_every > 0 and self.step % self.config.log_every == 0:
            writer = self._tensorboard()
            for k, v in window.means().items():
                writer.add_scalar(k, v, self.step)
            for k, v in window.throughput().items():
                writer.add_scalar(k, v, self.step)
            window.reset()

    def _write_validation(self, results: dict[str, float], clips: list[AudioSample]) -> None:
        writer = self._tensorboard()
        for k, v in results.items():
            writer.add_scalar(f"val/{k}", v, self.step)
        out = self.paths.samples / ckpt.step_dir_name(self.step)
        for clip in clips:
            audio = clip.audio.detach().float().cpu().clamp(-1, 1)
            _write_wav_atomic(out / f"{clip.name}.wav", audio, clip.sample_rate)
            writer.add_audio(f"samples/{clip.name}", audio.mean(0), self.step, clip.sample_rate)
            writer.add_image(f"spectrograms/{clip.name}", spectrogram_image(audio), self.step)
        writer.flush()

    def _tensorboard(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.paths.logs))
        return self._writer


class _Window:
    """Running means of logged values and throughput since the last TensorBoard write."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.time = self.data_time = 0.0
        self.samples = self.frames = 0

    def add(self, seconds: float, data_seconds: float, samples: int, frames: int) -> None:
        self.time += seconds
        self.data_time += data_seconds
        self.samples += samples
        self.frames += frames

    def accumulate(self, metrics: dict[str, float]) -> None:
        self.count += 1
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def means(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def throughput(self) -> dict[str, float]:
        t = max(self.time, 1e-9)
        return {
            "perf/samples_per_s": self.samples / t,
            "perf/latent_frames_per_s": self.frames / t,
            "perf/step_s": self.time / max(self.count, 1),
            "perf/data_wait_fraction": self.data_time / t,
        }


def spectrogram_image(audio: torch.Tensor, n_fft: int = 512) -> torch.Tensor:
    """Log-magnitude spectrogram of (channels, samples) audio as a (3, freq, frames) image.

    Uses a simple dark-blue → yellow ramp so no plotting library is needed.
    """
    mono = audio.float().mean(0)
    n_fft = min(n_fft, max(16, 2 ** int(math.log2(max(mono.numel(), 16)))))
    spec = torch.stft(
        mono, n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True
    ).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    level = ((db - (db.max() - 80)) / 80).clamp(0, 1).flip(0)
    return torch.stack([level, level**0.5 * 0.9, 0.4 * (1 - level)]).clamp(0, 1)


def _fsdp_requested_on_cpu(accelerator: Any) -> bool:
    """Whether FSDP was asked for (`ACCELERATE_USE_FSDP`) in a multi-process CPU run, which
    Accelerate runs as plain MULTI_CPU (it enables FSDP on accelerators only)."""
    from accelerate.utils import DistributedType, parse_flag_from_env

    multi_cpu = accelerator.distributed_type == DistributedType.MULTI_CPU
    return multi_cpu and parse_flag_from_env("ACCELERATE_USE_FSDP")


def _grad_norm(params: list[nn.Parameter]) -> torch.Tensor:
    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


def _size(dataset: Any) -> str:
    try:
        return str(len(dataset))
    except TypeError:
        return "an unknown number of"


def _metric_step(line: str) -> int | None:
    """The step of one metrics line, None for a blank or half-written (unparsable) line."""
    try:
        record = json.loads(line)
        return int(record.get("step", 0))
    except (AttributeError, TypeError, ValueError):
        return None


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after `step` (by a run killed after its last checkpoint) and
    lines that do not parse (a write cut short by the kill)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        line_step = _metric_step(line)
        if line_step is not None and line_step <= step:
            kept.append(line)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _write_wav_atomic(path: Path, audio: torch.Tensor, sample_rate: int) -> None:
    """Write (channels, samples) float audio as 16-bit WAV through a temp file + rename."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, audio.numpy().T, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
