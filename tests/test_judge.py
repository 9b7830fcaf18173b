"""The world judge: training overfits, weights round trip, benchmark scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiox_turbo.data.world.labels import class_label
from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.eval import judge as J
from audiox_turbo.eval.world_benchmark import onset_error, tempo_error

SR = 16000
SMALL = {"channels": (8, 16, 32, 32), "embed_dim": 32}


def test_benchmark_onset_and_tempo_errors() -> None:
    events = np.array([0.3, 0.9, 1.5])
    assert onset_error(events + 0.004, [0.3, 0.9, 1.5]) < 0.005
    assert onset_error(np.array([]), [0.3]) == 0.5
    assert onset_error(np.array([1.0]), [0.2]) == 0.5
    assert tempo_error(None, 120.0) == 1.0
    assert tempo_error(126.0, 120.0) == pytest.approx(0.05)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory):
    from audiox_turbo.data.world.generate import generate_world

    out = tmp_path_factory.mktemp("world")
    return generate_world(
        out, 16, seed=3, split="train", duration=1.5, video_fraction=0.0, progress=False
    )


def test_training_overfits_a_tiny_world(tiny_world) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: extra threads only contend on a busy CI box
    try:
        _overfit(tiny_world)
    finally:
        torch.set_num_threads(threads)


def _overfit(tiny_world) -> None:
    config = J.JudgeConfig(**SMALL)
    waves, labels = J.manifest_clips(tiny_world, SR)
    assert waves.shape == (16, round(1.5 * SR))
    targets = J.targets_from_labels(labels, config)
    net, history = J.train_judge(
        waves, targets, config, epochs=60, batch_size=16, lr=1e-2, crop_seconds=None
    )
    assert history.loss[-1] < 0.15 * history.loss[0]
    assert history.class_accuracy[-1] == 1.0
    with torch.no_grad():
        out = net(waves)
    assert (out.klass.argmax(1) == targets.klass).float().mean() >= 0.9
    assert (out.category.argmax(1) == targets.category).all()


def test_weights_round_trip_and_embedder_shapes(tmp_path) -> None:
    from audiox_turbo.eval.embedders import AudioTagger, get_embedder

    torch.manual_seed(0)
    net = J.JudgeNet(J.JudgeConfig(**SMALL)).eval()
    saved = J.save_judge(net, tmp_path / "judge", {"note": "test"})
    judge = get_embedder("judge", checkpoint=saved / J.WEIGHTS_FILE)
    assert isinstance(judge, AudioTagger)
    wave = torch.randn(3, 1, 24000).clamp(-1, 1)  # 24 kHz input is resampled
    emb = judge.embed(wave, 24000)
    assert emb.shape == (3, 32)
    logits = judge.classify(wave, 24000)
    assert logits.shape == (3, len(net.config.classes)) == (3, 24)
    with torch.no_grad():
        direct = net(torch.from_numpy(np.stack(J.mono_at_rate(wave, 24000, SR))))
    torch.testing.assert_close(emb, direct.embedding, rtol=1e-4, atol=1e-5)
    mixed = judge.all_outputs([wave[0, 0].numpy(), wave[1, 0, :5000].numpy()], 24000)
    assert mixed.embedding.shape == (2, 32) and mixed.instruments.shape == (2, 10)


def test_missing_or_bad_judge_is_one_line_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nowhere")):
        J.load_judge(tmp_path / "nowhere")
    J.save_judge(J.JudgeNet(J.JudgeConfig(**SMALL)), tmp_path / "j", {})
    (tmp_path / "j" / J.WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match=r"judge\.safetensors") as info:
        J.load_judge(tmp_path / "j")
    assert "\n" not in str(info.value)


def test_unknown_labels_and_missing_data_raise() -> None:
    config = J.JudgeConfig(**SMALL)
    with pytest.raises(AudioXError, match="sfx:teleport"):
        J.targets_from_labels([{"category": "sfx", "class": "teleport"}], config)
    with pytest.raises(AudioXError, match="no/such/dir"):
        J.resolve_manifest("no/such/dir")


def test_vocabulary_covers_every_world_class() -> None:
    from audiox_turbo.data.world.clip import draw_clip

    classes = set(J.JudgeConfig().classes)
    rng = np.random.default_rng(0)
    for _ in range(40):
        clip = draw_clip(rng, 0.5, SR, video_fraction=0.0, size=16)
        assert class_label(clip.labels) in classes
