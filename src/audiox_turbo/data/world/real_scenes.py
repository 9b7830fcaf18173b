"""Video scenes whose sounds are real samples: the synthetic world's scenes (same motion,
same exact event times) with a sampled ball thud, a GM piano, recorded or espeak-ng speech and
a sampled engine, plus a dog that barks when its mouth opens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from audiox_turbo.data.world import real_music, real_speech, scenes
from audiox_turbo.data.world.canvas import blank, disc, ellipse, rectangle
from audiox_turbo.data.world.scenes import SceneClip
from audiox_turbo.data.world.sources.gm import DRUM_KEYS, DRUM_KITS
from audiox_turbo.data.world.sources.gs_effects import GS_SOUNDS, render_kit
from audiox_turbo.data.world.sources.soundfont import NoteEvent, render_notes
from audiox_turbo.data.world.synth import n_samples, normalize_peak

BARK_OPEN_S = 0.2
"""How long the dog's mouth stays open from the start of each bark."""


def bouncing_ball(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A ball bouncing on a floor; each contact sounds a sampled low tom at exactly that time."""
    frames, contacts = scenes.ball_scene(rng, duration, sample_rate, fps, size)
    top_speed = max(v for _, v, _ in contacts)
    kit = DRUM_KITS["standard kit"]
    hits = [
        NoteEvent(
            round(t * sample_rate),
            round((t + 0.3) * sample_rate),
            kit,
            DRUM_KEYS["low tom"],
            int(40 + 80 * v / top_speed),
        )
        for t, v, _ in contacts
        if t < duration - 0.05
    ]
    audio = render_notes(hits, n_samples(duration, sample_rate), sample_rate)
    events = [h.start / sample_rate for h in hits]
    facts = {"category": "sfx", "class": "ball bounce", "event_times": events}
    return SceneClip(normalize_peak(audio), frames, facts)


def keyboard(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A keyboard whose keys light up while a sampled grand piano plays their notes."""
    texture = str(rng.choice(["melody", "chords", "arpeggio"]))
    low = scenes.KEYBOARD_LOW
    band = real_music.Band(0, None, None, None)
    piece, band = real_music.compose(rng, duration, sample_rate, texture, band, (low, low + 23))
    audio = real_music.render(piece, band, n_samples(duration, sample_rate), sample_rate)
    frames = scenes.keyboard_frames(piece.notes, duration, fps, size)
    return SceneClip(audio, frames, real_music.music_labels(piece, band))


def talking_mouth(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A face whose mouth opens with the energy of real (recorded or espeak-ng) speech."""
    speech = real_speech.say(rng, duration, sample_rate)
    frames = scenes.face_frames(speech.audio, duration, sample_rate, fps, size)
    return SceneClip(speech.audio, frames, speech_facts(speech))


def speech_facts(speech: real_speech.Speech) -> dict[str, Any]:
    """The labels of a placed utterance."""
    return {
        "category": "speech",
        "class": "speech",
        "event_times": speech.word_starts,
        "speaker": speech.speaker,
        "words": speech.words,
        "speech_region": list(speech.region),
    }


def _engine(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    return render_kit("car engine", [0], n, sample_rate)


def vehicle_crossing(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A car passing, its sampled engine Doppler-shifted and attenuated with distance."""
    clip = scenes.vehicle_crossing(rng, duration, sample_rate, fps, size, engine=_engine)
    clip.facts["class"] = "car passing"
    return clip


def barking_dog(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A dog's head whose mouth opens for BARK_OPEN_S from the start of each sampled bark."""
    hold = GS_SOUNDS["dog bark"].hold
    times, t = [], float(rng.uniform(0.1, 0.6))
    while t < duration - hold:
        times.append(round(t * sample_rate))
        t += hold + float(rng.uniform(0.15, 0.9))
    audio = render_kit("dog bark", times, n_samples(duration, sample_rate), sample_rate)
    starts = [s / sample_rate for s in times]
    n_frames = n_samples(duration, fps)
    frames = blank(n_frames, size, (150, 200, 120))
    c = size / 2
    for k in range(n_frames):
        now = k / fps
        open_ = any(s <= now < s + BARK_OPEN_S for s in starts)
        disc(frames[k], c - size * 0.05, c, size * 0.3, (150, 100, 60))
        ellipse(frames[k], c - size * 0.3, c - size * 0.22, size * 0.14, size * 0.07, (90, 60, 30))
        ellipse(frames[k], c - size * 0.3, c + size * 0.22, size * 0.14, size * 0.07, (90, 60, 30))
        disc(frames[k], c - size * 0.12, c - size * 0.1, size * 0.035, (20, 20, 20))
        disc(frames[k], c - size * 0.12, c + size * 0.1, size * 0.035, (20, 20, 20))
        ry = size * (0.1 if open_ else 0.015)
        rectangle(frames[k], int(c + size * 0.05), int(c - size * 0.04), int(c + size * 0.08),
                  int(c + size * 0.04), (30, 20, 20))  # fmt: skip
        ellipse(frames[k], c + size * 0.16, c, ry, size * 0.13, (110, 20, 30))
    facts = {"category": "sfx", "class": "dog barking", "event_times": starts}
    return SceneClip(normalize_peak(audio), frames, facts)


REAL_SCENES: dict[str, Callable[[np.random.Generator, float, int, int, int], SceneClip]] = {
    "bouncing ball": bouncing_ball,
    "flashing lamp": scenes.flashing_lamp,
    "keyboard": keyboard,
    "talking mouth": talking_mouth,
    "vehicle crossing": vehicle_crossing,
    "barking dog": barking_dog,
}
"""Scenes of the real world by the name used in labels and captions."""
