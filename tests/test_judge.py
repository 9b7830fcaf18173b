"""The world judge: training overfits, weights round trip, benchmark scoring."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from audiox_turbo.data.world.judge_vocabulary import (
    JUDGE_CLASSES,
    JUDGE_INSTRUMENTS,
    judge_class,
    judge_instruments,
)
from audiox_turbo.data.world.labels import CLASSES
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
    assert logits.shape == (3, len(net.config.classes)) == (3, len(JUDGE_CLASSES))
    with torch.no_grad():
        direct = net(torch.from_numpy(np.stack(J.mono_at_rate(wave, 24000, SR))))
    torch.testing.assert_close(emb, direct.embedding, rtol=1e-4, atol=1e-5)
    mixed = judge.all_outputs([wave[0, 0].numpy(), wave[1, 0, :5000].numpy()], 24000)
    assert mixed.embedding.shape == (2, 32)
    assert mixed.instruments.shape == (2, len(JUDGE_INSTRUMENTS))


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


def test_vocabulary_covers_every_world_class_of_both_source_families() -> None:
    from audiox_turbo.data.world.clip import draw_clip
    from audiox_turbo.data.world.real_clip import draw_real_clip

    classes, instruments = set(J.JudgeConfig().classes), set(J.JudgeConfig().instruments)
    rng = np.random.default_rng(0)
    seen = set()
    for draw, seconds in [(draw_clip, 0.5)] * 40 + [(draw_real_clip, 2.0)] * 12:
        clip = draw(rng, seconds, SR, video_fraction=0.2, size=32)
        assert judge_class(clip.labels) in classes
        assert set(judge_instruments(clip.labels)) <= instruments
        seen.add(judge_class(clip.labels))
    assert len(seen) >= 15


def test_shared_classes_mean_the_same_sound_in_both_families() -> None:
    """A synthetic piano and a GM piano are one class; real names fold into synthetic ones."""
    synthetic = {"category": "music", "class": "piano", "instruments": ["piano", "bass"]}
    real = {
        "category": "music",
        "class": "piano",
        "instruments": ["honky-tonk piano", "fingered electric bass", "standard kit"],
        "programs": [3, 33, None],
        "families": ["piano", "bass", "drums"],
    }
    assert judge_class(synthetic) == judge_class(real) == "music:piano"
    assert judge_instruments(real) == ["piano", "bass", "drum kit"]
    violin = {**real, "class": "strings", "programs": [40]}
    fiddle = {**real, "class": "ethnic", "programs": [110]}
    assert judge_class(violin) == judge_class(fiddle) == "music:strings"
    drums = {**real, "class": "drums", "programs": [None, 48]}
    assert judge_class(drums) == "music:drum kit"
    assert judge_class({"category": "sfx", "class": "car engine"}) == "sfx:engine"
    assert judge_class({"category": "sfx", "class": "ball bounce"}) == "sfx:impact"
    assert len(set(JUDGE_CLASSES)) == len(JUDGE_CLASSES)
    synthetic_classes = [
        dict(zip(("category", "class"), c.split(":"), strict=True)) for c in CLASSES
    ]
    assert [judge_class(labels) for labels in synthetic_classes] == list(CLASSES)


def test_training_can_start_from_another_judge(tiny_world) -> None:
    """Same vocabulary: every weight carries over; another vocabulary: the trunk only."""
    config = J.JudgeConfig(**SMALL)
    waves, labels = J.manifest_clips(tiny_world, SR)
    targets = J.targets_from_labels(labels, config)
    torch.manual_seed(7)
    donor = J.JudgeNet(config).eval()
    net, _ = J.train_judge(waves[:4], targets, config, epochs=1, lr=1e-9, init=donor)
    conv = "blocks.1.conv1.weight"
    torch.testing.assert_close(net.state_dict()[conv], donor.state_dict()[conv])
    torch.testing.assert_close(net.class_head.weight, donor.class_head.weight)
    torch.testing.assert_close(net.instrument_head.weight, donor.instrument_head.weight)
    other = J.JudgeNet(dataclasses.replace(config, classes=config.classes[:-1])).eval()
    net, _ = J.train_judge(waves[:4], targets, config, epochs=1, lr=1e-9, init=other)
    torch.testing.assert_close(net.state_dict()[conv], other.state_dict()[conv])
    assert not torch.allclose(net.instrument_head.weight, other.instrument_head.weight)
    wider = J.JudgeNet(J.JudgeConfig(channels=(8, 16, 32, 64), embed_dim=32))
    with pytest.raises(AudioXError, match="--init"):
        J.train_judge(waves[:4], targets, config, epochs=1, init=wider)
