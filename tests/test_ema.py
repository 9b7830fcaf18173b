"""Float32 EMA with warm-up (train/ema.py)."""

from __future__ import annotations

import math

import torch
from torch import nn

from audiox_turbo.train.ema import EMA, ema_decay_at


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
