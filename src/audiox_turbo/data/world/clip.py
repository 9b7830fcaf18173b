"""One world clip drawn from a random stream: its audio, optional video frames, labels, captions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from audiox_turbo.data.world import music, voice
from audiox_turbo.data.world.captions import write_captions
from audiox_turbo.data.world.effects import AMBIENCES, EFFECTS, render_effect
from audiox_turbo.data.world.labels import empty_labels
from audiox_turbo.data.world.scenes import SCENES
from audiox_turbo.data.world.tasks import draw_task

CATEGORY_WEIGHTS = {"music": 0.4, "sfx": 0.4, "speech": 0.2}
"""Mix of categories among audio-only clips."""
AMBIENCE_PROBABILITY = 0.5
"""Share of audio-only effect clips mixed over a background ambience."""


@dataclass
class WorldClip:
    """A generated clip: mono audio (samples,) in [-1, 1], frames (n, size, size, 3) uint8 or
    None, JSON-ready labels and captions."""

    audio: np.ndarray
    frames: np.ndarray | None
    labels: dict[str, Any]
    captions: list[str]


AudioOnly = Callable[[np.random.Generator, str, float, int, dict[str, Any]], np.ndarray]
"""Renders an audio-only clip of a category (rng, category, duration, sample_rate, labels),
filling the labels in place."""


def draw_scene_or_audio(
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
    video_fraction: float,
    fps: int,
    size: int,
    labels: dict[str, Any],
    scenes: dict[str, Any],
    audio_only: AudioOnly,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The draw every source family shares: a video scene of `scenes` with probability
    `video_fraction`, else an audio-only clip of a weighted category; then the training task.
    Fills `labels` in place; returns the audio (samples,) and frames or None."""
    frames = None
    if rng.random() < video_fraction:
        scene = str(rng.choice(list(scenes)))
        rendered = scenes[scene](rng, duration, sample_rate, fps, size)
        audio, frames = rendered.audio, rendered.frames
        facts = dict(rendered.facts)
        known = {k: facts.pop(k) for k in list(facts) if k in labels}
        labels.update(known, scene=scene, details=facts)
    else:
        category = str(rng.choice(list(CATEGORY_WEIGHTS), p=list(CATEGORY_WEIGHTS.values())))
        audio = audio_only(rng, category, duration, sample_rate, labels)
    task, region = draw_task(rng, labels["category"], frames is not None, duration)
    labels.update(task=task, task_region=region)
    return audio, frames


def draw_clip(
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
    video_fraction: float,
    fps: int = 25,
    size: int = 128,
) -> WorldClip:
    """Draw and render one clip: a video scene with probability `video_fraction`, else music,
    an effect (maybe over ambience) or a voice."""
    labels = empty_labels()
    audio, frames = draw_scene_or_audio(
        rng, duration, sample_rate, video_fraction, fps, size, labels, SCENES, _audio_only
    )
    captions = write_captions(labels, rng)
    return WorldClip(audio.astype(np.float32), frames, labels, captions)


def _audio_only(
    rng: np.random.Generator,
    category: str,
    duration: float,
    sample_rate: int,
    labels: dict[str, Any],
) -> np.ndarray:
    """Render an audio-only clip of `category`, filling its labels in place."""
    labels["category"] = category
    if category == "music":
        piece = music.compose(rng, duration, sample_rate)
        labels.update(
            {
                "class": piece.instruments[0],
                "instruments": list(piece.instruments),
                "tempo": piece.tempo,
                "key": piece.key,
                "mode": piece.mode,
                "texture": piece.texture,
                "event_times": piece.onsets,
            }
        )
        return music.render(piece, duration, sample_rate, rng)
    if category == "sfx":
        name = str(rng.choice(list(EFFECTS)))
        background = None
        if rng.random() < AMBIENCE_PROBABILITY:
            background = str(rng.choice(list(AMBIENCES)))
        effect = render_effect(rng, name, duration, sample_rate, background)
        labels.update(
            {
                "class": name,
                "event_times": effect.events,
                "ambience": background,
                "details": effect.details,
            }
        )
        return effect.audio
    utterance = voice.speak(rng, duration, sample_rate)
    labels.update(
        {
            "class": "speech",
            "event_times": utterance.events,
            "speaker": utterance.speaker.labels(),
            "details": {"syllables": len(utterance.syllables)},
        }
    )
    return utterance.audio
