"""The order training data is seen in: seeded per-epoch permutations sharded over ranks, and a
resumable stream of micro-batches that records its `DataPosition` for checkpoints."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from audiox_turbo.errors import AudioXError
from audiox_turbo.train.run_config import TrainConfig


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


@dataclass
class MicroBatches:
    """Endless micro-batches of one rank, in the order a resumed run repeats exactly.

    Iterating advances `position` in place (the Trainer checkpoints it); start a new
    iteration after restoring a position.
    """

    dataset: Dataset | IterableDataset
    config: TrainConfig
    rank: int
    world: int
    position: DataPosition
    collate_fn: Callable[[list[Any]], Any] | None = None
    pin_memory: bool = False

    def __iter__(self) -> Iterator[Any]:
        if isinstance(self.dataset, IterableDataset):
            return self._iterable_batches()
        return self._map_batches()

    def _iterable_batches(self) -> Iterator[Any]:
        """Iterable data: one loader per epoch, skipping the batches consumed before resume."""
        pos = self.position
        while True:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(pos.epoch)
            loader = DataLoader(
                self.dataset, batch_size=self.config.batch_size, **self._loader_options()
            )
            batches = iter(loader)
            for _ in range(pos.batch):
                next(batches, None)
            produced = False
            for batch in batches:
                produced = True
                pos.batch += 1
                yield batch
            if not produced and pos.batch == 0:
                raise self._too_small()
            pos.epoch, pos.batch = pos.epoch + 1, 0

    def _map_batches(self) -> Iterator[Any]:
        """Map-style data through one loader spanning epochs (workers and prefetch persist)."""
        cfg, pos = self.config, self.position
        sampler = EpochChainBatchSampler(
            len(self.dataset),  # type: ignore[arg-type]
            cfg.batch_size,
            self.rank,
            self.world,
            cfg.seed,
            pos,
            keyed_by_epoch=hasattr(self.dataset, "set_epoch"),
        )
        per_epoch = sampler.batches_per_epoch()
        if per_epoch == 0:
            raise self._too_small()
        loader = DataLoader(self.dataset, batch_sampler=sampler, **self._loader_options())
        for batch in loader:
            pos.batch += 1
            if pos.batch == per_epoch:
                pos.epoch, pos.batch = pos.epoch + 1, 0
            yield batch

    def _loader_options(self) -> dict[str, Any]:
        cfg = self.config
        seed = cfg.seed * 1_000_003 + self.position.epoch * 101 + self.rank
        return dict(
            collate_fn=self.collate_fn,
            num_workers=cfg.num_workers,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(seed),
            pin_memory=self.pin_memory,
        )

    def _too_small(self) -> AudioXError:
        try:
            size = str(len(self.dataset))  # type: ignore[arg-type]
        except TypeError:
            size = "an unknown number of"
        return AudioXError(
            f"dataset too small: {size} items cannot fill one batch of "
            f"{self.config.batch_size} on each of {self.world} processes"
        )


def seed_worker(worker_id: int) -> None:
    """Seed python and numpy RNGs of a loader worker from its torch seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
