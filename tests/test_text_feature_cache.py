"""Caption features cached by `data encode --text` feed the teacher like live encoding."""

from __future__ import annotations

import sys

import torch

from audiox_turbo import cli
from audiox_turbo.data.dataset import collate
from audiox_turbo.data.latents import LatentShardDataset
from audiox_turbo.data.manifest import write_manifest
from audiox_turbo.pipeline import AudioXTurbo
from audiox_turbo.train.run_config import DistillConfig, TeacherTrainingConfig, TrainConfig
from audiox_turbo.train.student import DistillTask
from audiox_turbo.train.teacher import TeacherTask
from audiox_turbo.train.trainer import Trainer
from test_dataset import make_clip


def encode(tmp_path, monkeypatch, capsys, preset_name: str) -> int:
    """`data encode --text` of a 2-clip manifest into tmp_path/lat; the exit code."""
    argv = ["audiox-turbo", "data", "encode", str(tmp_path / "m.jsonl")]
    argv += ["--out", str(tmp_path / "lat"), "--preset", preset_name, "--text"]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        cli.main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_teacher_and_distill_train_on_cached_text_latents(tmp_path, monkeypatch, capsys):
    """The loss mask is the latent frame mask (T frames), never the caption mask (L tokens)."""
    records = [make_clip(tmp_path, f"c{i}", duration=1.0 + i, video=False) for i in range(2)]
    write_manifest(tmp_path / "m.jsonl", records)
    assert encode(tmp_path, monkeypatch, capsys, "demo") == 0, capsys.readouterr().err
    samples = list(LatentShardDataset(tmp_path / "lat", crop_frames=None, shuffle=False))
    batch = collate(samples)
    assert batch["text_features"].shape[1] != batch["latents"].shape[-1]
    model = AudioXTurbo.from_preset("demo")
    cfg = TrainConfig(batch_size=2, max_steps=1, num_workers=0, log_every=0, sample_every=0)
    settings = TeacherTrainingConfig(validation_prompts=())
    task = TeacherTask(model.config, cfg, settings, model.codec, model.conditioner, model.denoiser)
    ctx = Trainer(task, cfg, tmp_path / "run", samples, collate, progress=False, cpu=True)
    prepared = task.latents_and_inputs(batch, ctx.context())
    assert torch.equal(prepared.mask, batch["latent_mask"])
    assert torch.isfinite(task.training_step(batch, "flow", ctx.context())["loss"])
    distill = DistillTask(model, cfg, DistillConfig(critic_updates=1))
    trainer = Trainer(distill, cfg, tmp_path / "d", samples, collate, progress=False, cpu=True)
    for phase in ("critic", "generator"):
        losses = distill.training_step(batch, phase, trainer.context())
        assert torch.isfinite(losses["loss"])


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
