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
    ("A drum pattern at 120 BPM.", "music:drum kit"),
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
