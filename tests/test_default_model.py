"""The default model shipped in the package: it is there, loads by default, is small, and what it
generates for an instrument, a sound effect and speech is judged to be what was asked for
(fixed seeds), so a broken or missing asset fails CI."""

from __future__ import annotations

import pytest
import torch

from audiox_turbo import AudioXTurbo
from audiox_turbo.eval.judge import load_judge_embedder
from audiox_turbo.model_dir import shipped_model_dir, training_summary

PROMPTS = (
    ("A drum pattern played on an acoustic kit.", "music:drum kit"),
    ("A dog barking.", "sfx:dog barking"),
    ("A man talking.", "speech:speech"),
)


@pytest.fixture(scope="module")
def shipped() -> AudioXTurbo:
    assert shipped_model_dir() is not None, "no default model in src/audiox_turbo/assets/default"
    return AudioXTurbo.from_pretrained(device="cpu")


def test_the_shipped_model_is_a_trained_student_within_the_size_budget(shipped) -> None:
    root = shipped_model_dir()
    assert root is not None
    assert shipped.trained and shipped.config.sampler.method == "student"
    size = sum(f.stat().st_size for f in root.iterdir())
    assert size < 60 * 2**20, size
    lines = training_summary(root)
    assert lines and lines[0].startswith("trained by: audiox-turbo recipe demo")


def test_prompts_of_three_categories_are_judged_as_asked(shipped) -> None:
    judge = load_judge_embedder(None)
    classes = judge.net.config.classes
    texts = [text for text, _ in PROMPTS]
    with torch.inference_mode():
        out = shipped(texts, duration=2.0, seed=0)
    audio = out.waveforms[:, 0]
    assert audio.shape == (3, 32000) and bool(torch.isfinite(audio).all())
    heard = judge.all_outputs(audio, out.sample_rate).klass.argmax(1).tolist()
    assert [classes[i] for i in heard] == [label for _, label in PROMPTS]


def test_a_world_video_alone_gets_its_sound_at_its_events(shipped, tmp_path) -> None:
    """Video to audio, no text: the first scene of the real-source world's test split (a lamp
    flashing with beeps, seed 0) comes out as beeps whose onsets sit near the flashes (0.035 s
    here). Zeroed video features fail it; the onset bound is loose (beeps are periodic, and
    features shifted by 0.2 s still give 0.034 s for this seed: the timing is weakly learned)."""
    from audiox_turbo.data.manifest import read_manifest
    from audiox_turbo.data.world.generate import generate_world
    from audiox_turbo.data.world.measure import detect_onsets
    from audiox_turbo.eval.world_benchmark import onset_error

    manifest = generate_world(
        tmp_path,
        1,
        seed=0,
        split="test",
        duration=2.0,
        video_fraction=1.0,
        progress=False,
        sources="real",
    )
    (record,) = read_manifest(manifest)
    assert record.labels["class"] == "beeps" and record.video is not None
    with torch.inference_mode():
        out = shipped(video=str(record.video_path(tmp_path)), duration=2.0, seed=0)
    audio = out.waveforms[0, 0]
    judge = load_judge_embedder(None)
    heard = judge.all_outputs(audio[None], out.sample_rate).klass.argmax(1).item()
    assert judge.net.config.classes[heard] == "sfx:beeps"
    onsets = detect_onsets(audio.numpy(), out.sample_rate)
    assert onset_error(onsets, record.labels["event_times"]) < 0.1


def test_a_tempo_the_prompt_states_is_kept(shipped) -> None:
    """The beat grid: drum patterns asked at 80–140 BPM come out at the asked tempo, mean error
    2.6 % (84.4, 103.1, 120.3, 142.4); with the grid zeroed 13 % (100 and 120 BPM come out
    at 83 and 84)."""
    from audiox_turbo.data.world.measure import estimate_tempo

    tempos = (80, 100, 120, 140)
    texts = [f"A drum pattern played on an acoustic kit at {bpm} BPM." for bpm in tempos]
    with torch.inference_mode():
        out = shipped(texts, duration=5.0, seed=0)
    errors = []
    for bpm, wave in zip(tempos, out.waveforms, strict=True):
        measured = estimate_tempo(wave[0].numpy(), out.sample_rate)
        errors.append(1.0 if measured is None else abs(measured - bpm) / bpm)
    assert sum(errors) / len(errors) <= 0.04, errors
