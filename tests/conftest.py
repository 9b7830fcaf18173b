"""Shared test fixtures: tiny configs and weight randomisation (zero-init layers hide bugs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

OFFICIAL_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "official" / "fixtures"


def randomize_(module: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Overwrite every floating parameter with N(0, std²) noise (deterministic in seed)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


@pytest.fixture
def tiny_config():
    from audiox_turbo.config import preset

    return preset("tiny")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine run fastest (and steadiest) on one thread; module
    scope, so module-scoped fixtures (trained toys, teachers) can run under it too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
