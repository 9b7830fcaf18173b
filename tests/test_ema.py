"""Float32 EMA with warm-up (train/ema.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiox_turbo.train.ema import EMA, early_half_share, ema_decay_at
from audiox_turbo.train.trainer import Trainer


def test_ema_matches_closed_form_in_float64():
    decay, warmup = 0.8, 3
    g = torch.Generator().manual_seed(0)
    values = [torch.randn(5, generator=g, dtype=torch.float64) for _ in range(9)]
    module = nn.Linear(5, 1, bias=False).double()
    ema = EMA(module, decay, warmup)
    for v in values:
        with torch.no_grad():
            module.weight.copy_(v.view(1, 5))
        ema.update(module)
    betas = [ema_decay_at(k, decay, warmup) for k in range(len(values))]
    assert betas[0] == 0.0 and betas[-1] == decay
    expected = torch.zeros(5, dtype=torch.float64)
    for k, v in enumerate(values):
        expected += (1 - betas[k]) * math.prod(betas[k + 1 :]) * v
    assert ema.shadow["weight"].dtype == torch.float32
    torch.testing.assert_close(ema.shadow["weight"].view(5).double(), expected, atol=1e-6, rtol=0)


def test_ema_applied_swaps_and_restores():
    module = nn.Linear(3, 2)
    ema = EMA(module, 0.5)
    original = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.add_(1.0)
    ema.update(module)
    with ema.applied(module):
        torch.testing.assert_close(module.weight, original + 0.5)
    torch.testing.assert_close(module.weight, original + 1.0)


@pytest.mark.parametrize(
    ("decay", "warmup", "updates"), [(0.999, 0, 400), (0.99, 10, 60), (0.9, 0, 7)]
)
def test_early_half_share_is_what_an_ema_keeps_of_the_first_half(decay, warmup, updates):
    module = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema = EMA(module, decay, warmup)
    with torch.no_grad():
        for update in range(updates):
            module.weight.fill_(1.0 if update < updates // 2 else 0.0)
            ema.update(module)
    share = early_half_share(decay, warmup, updates)
    assert ema.shadow["weight"].item() == pytest.approx(share, rel=1e-5)


def test_trainer_notes_an_ema_that_would_lag_the_run(tmp_path):
    from test_trainer import ToyDataset, TwoRateTask, toy_config

    lagging = toy_config(max_steps=400, ema_decay=0.999, ema_warmup=0)
    trainer = Trainer(TwoRateTask(), lagging, tmp_path / "a", ToyDataset(), cpu=True)
    notes = trainer.ema_lag_notes()
    assert len(notes) == 2 and "fast" in notes[0] and "400 updates: 82%" in notes[0]
    assert "slow" in notes[1] and "133 updates" in notes[1]
    following = toy_config(max_steps=400, ema_decay=0.98, ema_warmup=0)
    assert (
        Trainer(TwoRateTask(), following, tmp_path / "b", ToyDataset(), cpu=True).ema_lag_notes()
        == []
    )
