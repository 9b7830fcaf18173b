"""The training engine: runs a `Task` (train/task.py) step by step under Accelerate.

The Trainer owns the process group (DDP/FSDP through `accelerate launch` or torchrun, gloo on
CPU; train/sharding.py), mixed precision, gradient accumulation, clipping, AdamW + schedules
(train/schedule.py) and float32 EMA (train/ema.py). It composes the data order
(train/data_order.py), the run state with its checkpoints and exact resume (train/run_state.py,
periodic and on SIGTERM / SIGINT) and the run's logs (train/run_log.py).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.errors import AudioXError
from audiox_turbo.train import checkpoint as ckpt
from audiox_turbo.train import sharding
from audiox_turbo.train.data_order import MicroBatches
from audiox_turbo.train.ema import EMA, early_half_share
from audiox_turbo.train.run_config import TrainConfig
from audiox_turbo.train.run_dir import RunPaths
from audiox_turbo.train.run_log import RunLog, ThroughputWindow, progress_bar
from audiox_turbo.train.run_state import RunState
from audiox_turbo.train.schedule import build_scheduler
from audiox_turbo.train.task import StepContext, Task

PRECISIONS = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


@dataclass
class TrainResult:
    """How a `Trainer.fit` call ended."""

    step: int
    interrupted: bool
    checkpoint: Path | None


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
        self.config, self.paths = config, RunPaths(Path(run_dir))
        self.dataset, self.collate_fn, self.progress = dataset, collate_fn, progress
        self.accelerator = Accelerator(
            mixed_precision=PRECISIONS[config.precision],
            cpu=cpu,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        acc = self.accelerator
        self.rank, self.world = acc.process_index, acc.num_processes
        self.fsdp_on_cpu = sharding.fsdp_requested_on_cpu(acc)
        if self.fsdp_on_cpu and config.precision != "fp32":
            raise AudioXError(
                f"precision {config.precision!r} with FSDP on the CPU is not supported; use fp32"
            )
        self.run_config = run_config
        if acc.is_main_process:
            for d in (self.paths.checkpoints, self.paths.logs, self.paths.samples):
                d.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        self.log = RunLog(self.paths, config.log_every)
        self.state = self._build(task)
        self._stop_requested = False

    def _build(self, task: Task) -> RunState:
        """Wrap the trained networks, freeze the rest, build optimisers, schedules and EMA."""
        acc, cfg = self.accelerator, self.config
        sharded = sharding.is_sharded(acc, self.fsdp_on_cpu)
        modules = task.modules()
        specs = task.optimizers()
        trained = [n for s in specs.values() for n in s.modules]
        unknown = sorted(set(trained) - set(modules))
        if unknown:
            raise ValueError(f"optimizer specs name unknown modules {unknown}")
        names = sorted(set(trained))
        replicas: dict[str, nn.Module] = {}
        if sharded and acc.is_main_process:
            replicas = {n: copy.deepcopy(modules[n]) for n in names}
        wrapped = {n: sharding.wrap(modules[n], acc, self.fsdp_on_cpu) for n in names}
        ready: dict[str, nn.Module] = {}
        for name, module in modules.items():
            if name in wrapped:
                ready[name] = wrapped[name]
            else:
                module.requires_grad_(False)
                ready[name] = module.to(acc.device)
        optimizers: dict[str, Any] = {}
        schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        self.clip: dict[str, float] = {}
        self.params: dict[str, list[nn.Parameter]] = {}
        for name, spec in specs.items():
            params = [p for m in spec.modules for p in ready[m].parameters() if p.requires_grad]
            opt = torch.optim.AdamW(
                params,
                lr=cfg.lr if spec.lr is None else spec.lr,
                betas=tuple(cfg.betas if spec.betas is None else spec.betas),
                weight_decay=cfg.weight_decay if spec.weight_decay is None else spec.weight_decay,
            )
            self.params[name] = params
            optimizers[name] = acc.prepare_optimizer(opt)
            schedulers[name] = build_scheduler(
                optimizers[name].optimizer,
                cfg.schedule,
                cfg.warmup_steps // spec.update_every,
                cfg.max_steps // spec.update_every,
            )
            self.clip[name] = cfg.grad_clip if spec.grad_clip is None else spec.grad_clip
        generator = torch.Generator(device=acc.device)
        generator.manual_seed(cfg.seed * 7919 + self.rank + 1)
        state = RunState(
            accelerator=acc,
            task=task,
            specs=specs,
            modules=ready,
            optimizers=optimizers,
            schedulers=schedulers,
            ema={},
            generator=generator,
            sharded=sharded,
            replicas=replicas,
        )
        for n in task.ema_modules():
            state.ema[n] = EMA(state.ema_target(n), cfg.ema_decay, cfg.ema_warmup)
        return state

    @property
    def task(self) -> Task:
        """The task being trained."""
        return self.state.task

    @property
    def step(self) -> int:
        """Optimiser steps taken so far (restored on resume)."""
        return self.state.step

    @property
    def modules(self) -> dict[str, nn.Module]:
        """Every network by name, wrapped (DDP/FSDP) when trained."""
        return self.state.modules

    @property
    def optimizers(self) -> dict[str, Any]:
        """Accelerate-prepared AdamW optimisers by name (`.optimizer` is the torch one)."""
        return self.state.optimizers

    @property
    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LambdaLR]:
        """LR schedules by optimiser name, stepped once per update of their optimiser."""
        return self.state.schedulers

    @property
    def ema(self) -> dict[str, EMA]:
        """Float32 EMA by network name (under FSDP: of this process's shards)."""
        return self.state.ema

    @property
    def sharded(self) -> bool:
        """Whether trained networks are FSDP-sharded (parameters and optimiser state)."""
        return self.state.sharded

    def ema_lag_notes(self, max_steps: int | None = None) -> list[str]:
        """One line per EMA whose exported average would still lean on the run's first half
        (more than half of it from there, e.g. a long decay with no warm-up on a short run)."""
        steps, cfg = max_steps or self.config.max_steps, self.config
        notes = []
        for name in self.state.ema:
            every = next(s.update_every for s in self.state.specs.values() if name in s.modules)
            share = early_half_share(cfg.ema_decay, cfg.ema_warmup, steps // every)
            if share > 0.5:
                notes.append(
                    f"EMA of {name} (decay {cfg.ema_decay:g}, warm-up {cfg.ema_warmup}) over "
                    f"{steps // every} updates: {share:.0%} of the exported average comes from the "
                    "run's first half; lower ema_decay, raise ema_warmup or train longer"
                )
        return notes

    def context(self) -> StepContext:
        """The step context for the current step."""
        return self.state.context()

    def fit(self, max_steps: int | None = None, resume: bool = False) -> TrainResult:
        """Train until `max_steps` (default TrainConfig.max_steps) or a stop signal.

        Without `resume` the run folder must hold no checkpoints (AudioXError otherwise).
        """
        acc, cfg, state = self.accelerator, self.config, self.state
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
        bar = progress_bar(total, state.step) if self.progress and acc.is_main_process else None
        window = ThroughputWindow()
        shown: dict[str, float] = {}  # the last loss of each phase (a phase may skip steps)
        batches = iter(
            MicroBatches(
                self.dataset,
                cfg,
                self.rank,
                self.world,
                state.position,
                self.collate_fn,
                pin_memory=acc.device.type == "cuda",
            )
        )
        try:
            while state.step < total:
                metrics = self._train_step(batches, window)
                state.step += 1
                if bar is not None:
                    shown.update(phase_losses(metrics))
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
                if acc.is_main_process:
                    self.log.record_step(state.step, metrics, window)
                if cfg.sample_every > 0 and state.step % cfg.sample_every == 0:
                    self.validate_and_sample()
                stop = self._stop_agreed()
                if stop or (cfg.checkpoint_every > 0 and state.step % cfg.checkpoint_every == 0):
                    last_ckpt = self.save_checkpoint()
                if cfg.export_every > 0 and state.step % cfg.export_every == 0:
                    self.export(self.paths.exports / ckpt.step_dir_name(state.step))
                if stop:
                    return TrainResult(state.step, True, last_ckpt)
            if last_ckpt is None or ckpt.step_dir_name(state.step) != last_ckpt.name:
                last_ckpt = self.save_checkpoint()
            if cfg.sample_every > 0 and state.step % cfg.sample_every != 0:
                self.validate_and_sample()
            self.export()
            return TrainResult(state.step, False, last_ckpt)
        finally:
            if bar is not None:
                bar.close()
            self._restore_signal_handlers(previous)
            self.log.flush()
            acc.wait_for_everyone()

    def _train_step(self, batches: Iterator[Any], window: ThroughputWindow) -> dict[str, float]:
        acc, cfg, state = self.accelerator, self.config, self.state
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(max(cfg.grad_accum, 1))]
        t_data = time.perf_counter() - t0
        samples = frames = 0
        for b in micro:
            s, f = state.task.batch_stats(b)
            samples, frames = samples + s, frames + f
        ctx = state.context()
        logged: dict[str, float] = {}
        updated: set[str] = set()
        for phase in state.task.phases(state.step):
            spec = state.specs[phase]
            updated.update(spec.modules)
            sums: dict[str, float] = {}
            for i, b in enumerate(micro):
                last = i == len(micro) - 1
                with self._no_sync(spec.modules, not last):
                    losses = state.task.training_step(b, phase, ctx)
                    acc.backward(losses["loss"] / len(micro))
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(micro)
            norm = self._clip(phase)
            state.optimizers[phase].step()
            state.schedulers[phase].step()
            for m in state.modules.values():
                m.zero_grad(set_to_none=True)
            prefix = "" if len(state.optimizers) == 1 else f"{phase}/"
            logged.update({f"{prefix}{k}": v for k, v in sums.items()})
            logged[f"grad_norm/{phase}"] = float(norm)
            logged[f"lr/{phase}"] = state.schedulers[phase].get_last_lr()[0]
        for name, ema in state.ema.items():
            if name in updated:
                ema.update(state.ema_target(name))
        elapsed = time.perf_counter() - t0
        window.add(elapsed, t_data, samples * self.world, frames * self.world)
        logged["perf/step_s"] = elapsed
        logged["perf/data_s"] = t_data
        return logged

    def _clip(self, phase: str) -> torch.Tensor:
        """Clip the gradients of `phase` to its bound (none when <= 0); returns their norm."""
        bound = self.clip[phase]
        if self.state.sharded:
            self.accelerator.unscale_gradients()
            networks = [self.state.modules[m] for m in self.state.specs[phase].modules]
            return sharding.clip_sharded_grads(
                networks, self.params[phase], bound if bound > 0 else math.inf
            )
        if bound > 0:
            return self.accelerator.clip_grad_norm_(self.params[phase], bound)
        return sharding.grad_norm(self.params[phase])

    @contextlib.contextmanager
    def _no_sync(self, names: tuple[str, ...], skip_sync: bool) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if skip_sync and self.world > 1:
                for n in names:
                    stack.enter_context(self.accelerator.no_sync(self.state.modules[n]))
            yield

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current state atomically (collective: all ranks call it)."""
        return self.state.save(self.paths.checkpoints, self.config.keep_checkpoints)

    def load_latest(self) -> Path | None:
        """Restore the newest complete checkpoint of the run, if any; returns its path."""
        path = ckpt.latest_checkpoint(self.paths.checkpoints)
        if path is None:
            return None
        self.load_checkpoint(path)
        return path

    def load_checkpoint(self, path: Path) -> None:
        """Restore models, optimisers, schedulers, EMA, task state, RNG and data position;
        metric lines past the checkpoint's step are dropped."""
        self.state.load(path)
        if self.accelerator.is_main_process:
            self.log.truncate_after(self.state.step)
        self.accelerator.wait_for_everyone()

    def validate_and_sample(self) -> dict[str, float]:
        """Run the task's validation and sample hooks on the main process with EMA weights."""
        results: dict[str, float] = {}
        with self.state.ema_context() as ctx:
            if ctx is not None:
                was_training = {n: m.training for n, m in ctx.modules.items()}
                for m in ctx.modules.values():
                    m.eval()
                with torch.no_grad():
                    results = self.state.task.validate(ctx)
                    clips = self.state.task.samples(ctx)
                for n, m in ctx.modules.items():
                    m.train(was_training[n])
                self.log.write_validation(self.state.step, results, clips)
        self.accelerator.wait_for_everyone()
        return results

    def export(self, directory: Path | None = None) -> None:
        """Export the (EMA) model folder to `directory` (default `run/model`) on the main
        process."""
        with self.state.ema_context() as ctx:
            if ctx is not None:
                self.state.task.export(directory or self.paths.export, ctx)
        self.accelerator.wait_for_everyone()

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


def phase_losses(metrics: dict[str, float]) -> dict[str, float]:
    """The step's back-propagated losses for the progress bar: "loss", or one per phase
    ("critic/loss" -> "critic")."""
    return {
        k.removesuffix("/loss") if k != "loss" else k: v
        for k, v in metrics.items()
        if k == "loss" or k.endswith("/loss")
    }
