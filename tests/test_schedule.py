"""Learning-rate schedules (train/schedule.py)."""

from __future__ import annotations

import pytest

from audiox_turbo.train.schedule import lr_factor


def test_lr_schedules():
    assert lr_factor(0, "cosine", 4, 20) == pytest.approx(0.25)
    assert lr_factor(3, "cosine", 4, 20) == pytest.approx(1.0)
    assert lr_factor(12, "cosine", 4, 20) == pytest.approx(0.5)
    assert lr_factor(20, "cosine", 4, 20) == pytest.approx(0.0)
    assert lr_factor(16, "inverse_sqrt", 4, 20) == pytest.approx(0.5)
    assert lr_factor(99, "constant", 4, 20) == 1.0
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_factor(0, "linear", 4, 20)
