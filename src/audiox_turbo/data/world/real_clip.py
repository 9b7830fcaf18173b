"""One clip of the real world (`--sources real`): sampled music, recorded or espeak-ng speech,
real sound effects over ambience in rooms, and video scenes with real samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from audiox_turbo.data.world import real_music, real_speech
from audiox_turbo.data.world.captions import _pick
from audiox_turbo.data.world.clip import AMBIENCE_PROBABILITY, WorldClip, draw_scene_or_audio
from audiox_turbo.data.world.labels import empty_labels
from audiox_turbo.data.world.real_captions import (
    real_music_captions,
    real_sfx_captions,
    real_speech_captions,
)
from audiox_turbo.data.world.real_effects import (
    AMBIENCES,
    REAL_EFFECTS,
    ROOM_PROBABILITY,
    render_real_effect,
)
from audiox_turbo.data.world.real_scenes import REAL_SCENES, speech_facts
from audiox_turbo.data.world.sources import rooms
from audiox_turbo.data.world.synth import n_samples, normalize_peak

REAL_EXTRA_LABELS = ("programs", "families", "words", "speech_region", "room")
"""Label keys only the real world writes (besides those of `empty_labels`)."""


def draw_real_clip(
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
    video_fraction: float,
    fps: int = 25,
    size: int = 128,
) -> WorldClip:
    """Draw and render one real-source clip: a video scene with probability `video_fraction`,
    else sampled music, a real effect (maybe over ambience, maybe in a room) or speech."""
    labels = {**empty_labels(), **dict.fromkeys(REAL_EXTRA_LABELS), "programs": [], "families": []}
    audio, frames = draw_scene_or_audio(
        rng, duration, sample_rate, video_fraction, fps, size, labels, REAL_SCENES, _audio_only
    )
    writer = {
        "music": real_music_captions,
        "sfx": real_sfx_captions,
        "speech": real_speech_captions,
    }[labels["category"]]
    pool = writer(labels, labels["scene"])
    captions = _pick(rng, pool, int(rng.integers(3, 5)), keep_first=labels["scene"] is not None)
    return WorldClip(audio.astype(np.float32), frames, labels, captions)


def _audio_only(
    rng: np.random.Generator,
    category: str,
    duration: float,
    sample_rate: int,
    labels: dict[str, Any],
) -> np.ndarray:
    """Render an audio-only clip of `category`, filling its labels in place."""
    if category == "music":
        piece, band = real_music.compose(rng, duration, sample_rate)
        labels.update(real_music.music_labels(piece, band))
        return real_music.render(piece, band, n_samples(duration, sample_rate), sample_rate)
    room = str(rng.choice(list(rooms.ROOMS))) if rng.random() < ROOM_PROBABILITY else None
    if category == "sfx":
        name = str(rng.choice(list(REAL_EFFECTS)))
        background = None
        if rng.random() < AMBIENCE_PROBABILITY:
            background = str(rng.choice(list(AMBIENCES)))
        effect = render_real_effect(rng, name, duration, sample_rate, background, room)
        labels.update(
            {
                "category": "sfx",
                "class": name,
                "event_times": effect.events,
                "ambience": background,
                "room": room,
                "details": effect.details,
            }
        )
        return effect.audio
    speech = real_speech.say(rng, duration, sample_rate)
    audio = speech.audio
    if room is not None:
        audio = normalize_peak(rooms.reverberate(audio, room, sample_rate))
    labels.update(speech_facts(speech), room=room)
    return audio
