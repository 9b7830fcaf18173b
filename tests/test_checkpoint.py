"""The checkpoint folder format (train/checkpoint.py): the trainer.json manifest."""

from __future__ import annotations

import json

import pytest

from audiox_turbo.errors import AudioXError
from audiox_turbo.train import checkpoint as ckpt

MANIFEST = {"step": 3, "world_size": 2, "sharded": True, "positions": [[0, 3], [0, 3]]}


def test_manifest_round_trip(tmp_path):
    (tmp_path / ckpt.MANIFEST).write_text(json.dumps(MANIFEST))
    assert ckpt.read_manifest(tmp_path) == MANIFEST


@pytest.mark.parametrize("field", ["sharded", "positions", "step"])
def test_manifest_without_a_field_is_a_one_line_user_error(tmp_path, field):
    manifest = {k: v for k, v in MANIFEST.items() if k != field}
    (tmp_path / ckpt.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(AudioXError, match="cannot read checkpoint") as info:
        ckpt.read_manifest(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / ckpt.MANIFEST}: ")
    assert field in str(info.value) and "\n" not in str(info.value)
