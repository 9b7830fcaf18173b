"""Data order (train/data_order.py): the resumable micro-batch stream and its position."""

from __future__ import annotations

from itertools import islice

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from audiox_turbo.errors import AudioXError
from audiox_turbo.train.data_order import DataPosition, MicroBatches
from audiox_turbo.train.run_config import TrainConfig


class Indices(Dataset):
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> int:
        return i


class Counting(IterableDataset):
    """0..size-1, shifted by 100 per epoch (so the epoch each batch came from shows)."""

    def __init__(self, size: int) -> None:
        self.size, self.epoch = size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(range(100 * self.epoch, 100 * self.epoch + self.size))


def stream(dataset, position: DataPosition, rank: int = 0, world: int = 1) -> MicroBatches:
    config = TrainConfig(batch_size=3, seed=4, num_workers=0)
    return MicroBatches(dataset, config, rank, world, position)


def test_map_position_advances_across_epochs_and_a_restart_repeats_the_rest():
    position = DataPosition()
    first = [b.tolist() for b in islice(stream(Indices(10), position), 7)]
    assert position == DataPosition(2, 1)
    epoch0 = sorted(i for b in first[:3] for i in b)
    assert len(set(epoch0)) == 9 and all(0 <= i < 10 for i in epoch0)
    resumed = [b.tolist() for b in islice(stream(Indices(10), DataPosition(1, 1)), 3)]
    assert resumed == first[4:7]


def test_iterable_position_counts_loader_batches_and_a_restart_skips_them():
    position = DataPosition()
    first = [b.tolist() for b in islice(stream(Counting(10), position), 7)]
    assert first[:4] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert first[4:] == [[100, 101, 102], [103, 104, 105], [106, 107, 108]]
    assert position == DataPosition(1, 3)
    resumed = [b.tolist() for b in islice(stream(Counting(10), DataPosition(1, 1)), 4)]
    assert resumed == [*first[5:7], [109], [200, 201, 202]]


def test_ranks_see_disjoint_samples():
    seen = [
        {i for b in islice(stream(Indices(12), DataPosition(), rank, 2), 2) for i in b.tolist()}
        for rank in range(2)
    ]
    assert len(seen[0]) == len(seen[1]) == 6 and not seen[0] & seen[1]


@pytest.mark.parametrize(
    ("dataset", "size"), [(Indices(2), "2"), (Counting(0), "an unknown number of")]
)
def test_data_that_cannot_fill_a_batch_is_a_user_error(dataset, size):
    """Map-style: fewer items than one global batch; iterable (partial batches kept): none."""
    with pytest.raises(AudioXError, match=f"dataset too small: {size} items"):
        next(iter(stream(dataset, DataPosition())))


def test_batches_are_collated_tensors():
    batch = next(iter(stream(Indices(10), DataPosition())))
    assert isinstance(batch, torch.Tensor) and batch.shape == (3,)
