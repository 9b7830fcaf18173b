"""Caption features cached by `data encode --text` feed the teacher like live encoding."""

from __future__ import annotations

import sys

import torch

from audiox_turbo import cli
from audiox_turbo.data.latents import LatentShardDataset
from audiox_turbo.data.manifest import write_manifest
from audiox_turbo.pipeline import AudioXTurbo
from test_dataset import make_clip


def test_encode_text_cache_round_trip(tmp_path, monkeypatch, capsys):
    records = [make_clip(tmp_path, f"c{i}", duration=1.0, video=False) for i in range(2)]
    write_manifest(tmp_path / "m.jsonl", records)
    argv = [
        "audiox-turbo",
        "data",
        "encode",
        str(tmp_path / "m.jsonl"),
        "--out",
        str(tmp_path / "lat"),
        "--preset",
        "demo",
        "--text",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        cli.main()
    except SystemExit as e:
        assert e.code in (0, None), capsys.readouterr().err
    samples = list(LatentShardDataset(tmp_path / "lat", crop_frames=None, shuffle=False))
    assert len(samples) == 2
    pipe = AudioXTurbo.from_preset("demo")
    for sample in samples:
        assert sample["text_features"].shape[-1] == 384
        text = sample["text"] or None
        features = (sample["text_features"][None], sample["text_feature_mask"][None])
        live = pipe.conditioner.text([text], 1)
        cached = pipe.conditioner.text([text], 1, features=features)
        torch.testing.assert_close(cached.tokens, live.tokens, atol=1e-5, rtol=1e-4)


def test_encode_text_refuses_a_trainable_encoder(tmp_path, monkeypatch, capsys):
    write_manifest(tmp_path / "m.jsonl", [make_clip(tmp_path, "c0", duration=1.0, video=False)])
    argv = [
        "audiox-turbo",
        "data",
        "encode",
        str(tmp_path / "m.jsonl"),
        "--out",
        str(tmp_path / "lat"),
        "--preset",
        "tiny",
        "--text",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code
    assert code == 2 and "frozen text encoder" in capsys.readouterr().err
