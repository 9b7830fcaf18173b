"""The world judge: training overfits, measurements (key, tempo, onsets), weights round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.eval import judge as J
from audiox_turbo.eval.world_benchmark import onset_error, tempo_error

SR = 16000
SMALL = {"channels": (8, 16, 32, 32), "embed_dim": 32}


def _tone(midi: int, seconds: float, sr: int = SR) -> np.ndarray:
    """A note with 4 decaying harmonics and a short fade, shape (samples,)."""
    t = np.arange(round(seconds * sr)) / sr
    f = 440.0 * 2 ** ((midi - 69) / 12)
    wave = sum(0.6**k * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(4))
    return wave * np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)


def _chords(root_pc: int, mode: str, seconds: float = 0.8) -> np.ndarray:
    """I-IV-V-I (major) or i-iv-V-i (minor, harmonic V) block chords plus the scale."""
    third = 4 if mode == "major" else 3
    tonic = 60 + root_pc
    chords = [
        (0, third, 7),
        (5, 5 + (4 if mode == "major" else 3), 12),
        (7, 11, 14),
        (0, third, 7),
    ]
    parts = [sum(_tone(tonic + i, seconds) for i in c) for c in chords]
    scale = (0, 2, 4, 5, 7, 9, 11, 12) if mode == "major" else (0, 2, 3, 5, 7, 8, 10, 12)
    parts += [_tone(tonic + s, 0.25) for s in scale]
    audio = np.concatenate(parts)
    return audio / np.abs(audio).max() * 0.8


@pytest.mark.parametrize(
    ("root", "mode", "name"),
    [
        (0, "major", "C"),
        (2, "major", "D"),
        (9, "minor", "A"),
        (3, "minor", "Eb"),
        (6, "major", "F#"),
    ],
)
def test_key_of_chords_and_scales(root: int, mode: str, name: str) -> None:
    assert J.estimate_key(_chords(root, mode), SR) == (name, mode)


def test_chroma_peaks_on_the_played_pitch_class() -> None:
    c = J.chroma(_tone(64, 1.0), SR)  # E4
    assert c.shape == (12,)
    assert int(np.argmax(c)) == 4


@pytest.mark.parametrize("bpm", [90.0, 120.0, 150.0])
def test_tempo_of_a_click_track(bpm: float) -> None:
    audio = np.zeros(6 * SR)
    click = np.hanning(64) * np.sin(2 * np.pi * 2000 * np.arange(64) / SR)
    for onset in np.arange(0.1, 5.9, 60.0 / bpm):
        i = round(onset * SR)
        audio[i : i + 64] += click
    assert J.estimate_tempo(audio, SR) == pytest.approx(bpm, rel=0.02)
    assert J.estimate_tempo(np.zeros(200), SR) is None


def test_detected_events_match_the_clicks() -> None:
    audio = np.zeros(2 * SR)
    for t in (0.3, 0.9, 1.5):
        audio[round(t * SR) : round(t * SR) + 80] = 0.5 * np.hanning(80)
    events = J.detect_events(audio, SR)
    assert events == pytest.approx([0.3, 0.9, 1.5], abs=0.005)
    assert onset_error(events, [0.3, 0.9, 1.5]) < 0.005
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
        assert J.class_label(clip.labels) in classes
