"""The embedded world: determinism, seeds, true labels (tempo, sync), resume, captions, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiox_turbo.data.manifest import TASKS, read_manifest
from audiox_turbo.data.world import generate as gen
from audiox_turbo.data.world import music, scenes, voice
from audiox_turbo.data.world.clip import draw_clip
from audiox_turbo.data.world.effects import AMBIENCES, EFFECTS, render_effect
from audiox_turbo.data.world.generate import SPLITS, clip_seed, generate_world
from audiox_turbo.data.world.instruments import DRUM_PARTS, PITCHED
from audiox_turbo.data.world.labels import empty_labels
from audiox_turbo.data.world.measure import detect_onsets, estimate_tempo
from audiox_turbo.data.world.media import write_mp4
from audiox_turbo.data.world.tasks import AUDIO_TASKS
from audiox_turbo.errors import AudioXError
from audiox_turbo.io.audio import save_audio

SR = 16000
FPS = 25


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path: Path) -> None:
    kwargs = {"clips": 4, "seed": 3, "split": "val", "duration": 1.0, "video_fraction": 0.5}
    generate_world(tmp_path / "a", **kwargs, progress=False)
    generate_world(tmp_path / "b", **kwargs, progress=False)
    generate_world(tmp_path / "c", **kwargs, workers=2, progress=False)
    a = _tree_bytes(tmp_path / "a")
    assert any(k.startswith("video/") for k in a) and any(k.startswith("audio/") for k in a)
    assert a == _tree_bytes(tmp_path / "b")
    assert a == _tree_bytes(tmp_path / "c")
    other = generate_world(tmp_path / "d", **{**kwargs, "seed": 4}, progress=False)
    assert other.read_bytes() != (tmp_path / "a" / "val.jsonl").read_bytes()


def test_splits_use_disjoint_seed_streams() -> None:
    for seed in (0, 1, 12345):
        streams = {
            split: {tuple(clip_seed(seed, split, i).generate_state(4)) for i in range(500)}
            for split in SPLITS
        }
        assert all(len(s) == 500 for s in streams.values())
        assert not streams["train"] & streams["val"]
        assert not streams["train"] & streams["test"]
        assert not streams["val"] & streams["test"]
    assert clip_seed(0, "val", 5).entropy != clip_seed(0, "test", 5).entropy


def test_manifest_records_are_complete_and_consistent(tmp_path: Path) -> None:
    manifest = generate_world(tmp_path, 8, 11, "test", 1.0, SR, 0.5, progress=False)
    records = read_manifest(manifest)
    assert [r.id for r in records] == [f"test-{i:06d}" for i in range(8)]
    for i, r in enumerate(records):
        audio, rate = sf.read(r.audio_path(tmp_path))
        assert rate == SR and audio.ndim == 1 and len(audio) == SR
        assert r.split == "test" and r.channels == 1 and r.duration == 1.0
        labels = r.labels
        assert set(empty_labels()) | {"seed"} == set(labels)
        assert labels["seed"] == [11, 2, i]
        assert labels["task"] in TASKS
        assert labels["task"] in AUDIO_TASKS[(labels["category"], r.video is not None)]
        assert (r.video is not None) == (labels["scene"] is not None)
        if r.video is not None:
            assert r.video_path(tmp_path).is_file()
        assert all(0.0 <= t < 1.0 for t in labels["event_times"])
        if labels["task"] in ("inpaint", "continue"):
            start, end = labels["task_region"]
            assert 0.0 < start < end <= 1.0


def test_measured_tempo_matches_label(tmp_path: Path) -> None:
    manifest = generate_world(tmp_path, 14, 0, "train", 5.0, SR, 0.0, progress=False)
    music_clips = [r for r in read_manifest(manifest) if r.labels["category"] == "music"]
    assert len(music_clips) >= 4
    textures = set()
    for r in music_clips:
        audio, rate = sf.read(r.audio_path(tmp_path))
        measured = estimate_tempo(audio, rate)
        assert abs(measured - r.labels["tempo"]) <= 0.02 * r.labels["tempo"], r.labels
        textures.add(r.labels["texture"])
    assert len(textures) >= 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounce_sound_lands_on_floor_contact_frame(tmp_path: Path, seed: int) -> None:
    clip = scenes.bouncing_ball(np.random.default_rng(seed), 4.0, SR, FPS, 128)
    save_audio(tmp_path / "ball.wav", torch.from_numpy(clip.audio)[None], SR)
    write_mp4(tmp_path / "ball.mp4", clip.frames, FPS)
    import av

    with av.open(str(tmp_path / "ball.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 * FPS
    bottoms = []
    for rgb in frames:
        r, g = rgb[..., 0].astype(int), rgb[..., 1].astype(int)
        rows = np.flatnonzero(((r > 150) & (g < 100)).any(axis=1))
        bottoms.append(rows.max())
    bottoms = np.array(bottoms)
    floor = scenes.floor_row(128)
    assert bottoms.max() <= floor
    contact_frames = [  # the lowest frame of each bounce: the sampled instant nearest the contact
        k
        for k in range(1, len(bottoms) - 1)
        if bottoms[k] >= floor - 12 and bottoms[k] >= bottoms[k - 1] and bottoms[k] > bottoms[k + 1]
    ]
    audio, _ = sf.read(tmp_path / "ball.wav")
    onsets = detect_onsets(audio, SR)
    events = clip.facts["event_times"]
    assert len(events) >= 3
    assert len(onsets) == len(events)
    assert len(contact_frames) == len(events)
    for onset, frame in zip(onsets, contact_frames, strict=True):
        assert abs(onset - frame / FPS) <= 1.0 / FPS


def test_resume_regenerates_only_missing_clips(tmp_path: Path, monkeypatch) -> None:
    manifest = generate_world(tmp_path, 5, 2, "train", 1.0, SR, 0.5, progress=False)
    before = _tree_bytes(tmp_path)
    (tmp_path / "audio" / "train-000001.wav").unlink()
    (tmp_path / "meta" / "train-000003.json").unlink()
    (tmp_path / "audio" / ".train-000004.wav.x.part").write_bytes(b"half a file")
    manifest.unlink()
    made: list[int] = []
    real_make = gen.make_clip

    def counting(out_dir, spec, index):
        made.append(index)
        return real_make(out_dir, spec, index)

    monkeypatch.setattr(gen, "make_clip", counting)
    generate_world(tmp_path, 5, 2, "train", 1.0, SR, 0.5, progress=False)
    assert sorted(made) == [1, 3]
    assert _tree_bytes(tmp_path) == before


def test_killed_run_resumes_and_completes_manifest(tmp_path: Path, monkeypatch) -> None:
    real_make = gen.make_clip
    calls: list[int] = []

    def dies_on_third(out_dir, spec, index):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(index)
        return real_make(out_dir, spec, index)

    monkeypatch.setattr(gen, "make_clip", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        generate_world(tmp_path, 4, 5, "train", 1.0, SR, 0.0, progress=False)
    assert not (tmp_path / "train.jsonl").exists()
    calls.clear()
    monkeypatch.setattr(gen, "make_clip", lambda o, s, i: calls.append(i) or real_make(o, s, i))
    manifest = generate_world(tmp_path, 4, 5, "train", 1.0, SR, 0.0, progress=False)
    assert calls == [2, 3]
    assert len(read_manifest(manifest)) == 4
    fresh = generate_world(tmp_path / "fresh", 4, 5, "train", 1.0, SR, 0.0, progress=False)
    assert fresh.read_bytes() == manifest.read_bytes()


def test_changed_settings_regenerate(tmp_path: Path) -> None:
    generate_world(tmp_path, 2, 0, "train", 1.0, SR, 0.0, progress=False)
    manifest = generate_world(tmp_path, 2, 1, "train", 1.0, SR, 0.0, progress=False)
    assert all(r.labels["seed"][0] == 1 for r in read_manifest(manifest))


def test_captions_are_distinct_and_state_the_facts() -> None:
    categories = set()
    for seed in range(30):
        clip = draw_clip(np.random.default_rng(seed), 1.0, SR, 0.3)
        labels, captions = clip.labels, clip.captions
        categories.add(labels["category"])
        assert len(captions) >= 3 and len(set(captions)) == len(captions)
        for caption in captions:
            text = caption.lower()
            if labels["category"] == "music":
                assert f"{labels['tempo']}" in text
                assert all(name in text for name in labels["instruments"])
            elif labels["category"] == "sfx":
                assert labels["class"] in text
            else:
                assert labels["speaker"]["timbre"] in text
    assert categories == {"music", "sfx", "speech"}


def test_every_timbre_effect_and_ambience_renders() -> None:
    rng = np.random.default_rng(0)
    for name, render in PITCHED.items():
        note = render(220.0, 0.3, 1.0, SR, rng)
        assert np.isfinite(note).all() and np.abs(note).max() > 1e-3, name
    for name, hit in DRUM_PARTS.items():
        assert np.abs(hit(1.0, SR, rng)).max() > 1e-3, name
    assert len(PITCHED) + 1 >= 8 and len(EFFECTS) >= 12
    for name in EFFECTS:
        effect = render_effect(rng, name, 1.5, SR, str(rng.choice(list(AMBIENCES))))
        assert effect.audio.shape == (int(1.5 * SR),), name
        assert np.isfinite(effect.audio).all() and 0.5 < np.abs(effect.audio).max() <= 0.8 + 1e-9
        assert all(0 <= t < 1.5 and round(t * SR) == t * SR for t in effect.events), name


def test_music_piece_facts() -> None:
    rng = np.random.default_rng(4)
    piece = music.compose(rng, 3.0, SR, "drum pattern", ("drum kit", "bass"))
    beat = 60.0 / piece.tempo
    kicks = [n.onset for n in piece.notes if n.drum == "kick"]
    assert np.allclose(np.diff(kicks), 2 * beat, atol=1.0 / SR)
    assert music.TEMPO_RANGE[0] <= piece.tempo <= music.TEMPO_RANGE[1]
    assert piece.mode in music.SCALES and piece.key in music.PITCH_CLASSES
    assert all(n.midi is None or 28 <= n.midi <= 88 for n in piece.notes)


def test_voice_traits_follow_the_speaker() -> None:
    speaker = voice.Speaker("male-like", 110.0, 4.0)
    utterance = voice.speak(np.random.default_rng(0), 3.0, SR, speaker)
    pitches = []
    for onset in utterance.events:
        centre = round((onset + 0.12) * SR)
        segment = utterance.audio[centre - 600 : centre + 600]
        ac = np.correlate(segment, segment, "full")[len(segment) - 1 :]
        lo, hi = SR // 400, SR // 70
        pitches.append(SR / (lo + int(np.argmax(ac[lo:hi]))))
    assert abs(np.median(pitches) - 110.0) < 0.05 * 110.0
    rate = len(utterance.events) / 3.0
    assert 2.0 < rate < 4.5


def test_vehicle_doppler_pitch_falls_after_passing() -> None:
    clip = scenes.vehicle_crossing(np.random.default_rng(1), 4.0, SR, FPS, 64)
    t_pass = clip.facts["event_times"][0]

    def centroid(segment: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
        freqs = np.fft.rfftfreq(len(segment), 1.0 / SR)
        band = (freqs > 20) & (freqs < 400)
        return float((spec[band] * freqs[band]).sum() / spec[band].sum())

    before = clip.audio[: round((t_pass - 0.5) * SR)][-SR // 2 :]
    after = clip.audio[round((t_pass + 0.5) * SR) :][: SR // 2]
    assert centroid(before) > centroid(after)


def test_bad_arguments_raise_one_line_errors(tmp_path: Path) -> None:
    bad = [
        {"split": "dev"},
        {"clips": -1},
        {"video_fraction": 1.5},
        {"workers": 0},
        {"duration": 0.0},
    ]
    for override in bad:
        kwargs = {"clips": 1, "seed": 0, "split": "train", **override}
        with pytest.raises(AudioXError) as err:
            generate_world(tmp_path, progress=False, **kwargs)
        assert "\n" not in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(AudioXError, match="file"):
        generate_world(tmp_path / "file", 1, 0, "train", progress=False)


def test_cli_command_generates_and_imports_lazily(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from audiox_turbo.cli.data import world

    app = typer.Typer()
    app.command()(world)
    args = ["--out", str(tmp_path), "--clips", "2", "--duration", "1", "--video-fraction", "0"]
    result = CliRunner().invoke(app, [*args, "--split", "val", "--seed", "9"])
    assert result.exit_code == 0, result.output
    records = read_manifest(tmp_path / "val.jsonl")
    assert [r.labels["seed"] for r in records] == [[9, 1, 0], [9, 1, 1]]
    code = "import sys, audiox_turbo.cli.data; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"numpy", "scipy", "av", "torch", "soundfile"}


@pytest.mark.parametrize("sample_rate", [16000, 22050, 44100])
def test_tempo_estimate_is_unbiased_at_common_rates(sample_rate):
    from audiox_turbo.data.world.measure import estimate_tempo

    clicks = np.zeros(6 * sample_rate)
    for k in range(12):
        start = int(k * 0.5 * sample_rate)
        clicks[start : start + 200] += np.hanning(200) * np.sin(np.arange(200))
    assert estimate_tempo(clicks, sample_rate) == pytest.approx(120.0, rel=2e-4)
