"""Sound effects from real sources: the GS SFX kit, animal recordings, and the synthetic
classes that have no recorded counterpart; ambience beds and room reverberation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from audiox_turbo.data.world import effects
from audiox_turbo.data.world.effects import Effect
from audiox_turbo.data.world.sources import rooms
from audiox_turbo.data.world.sources.animals import ANIMALS, animal_recording
from audiox_turbo.data.world.sources.gs_effects import GS_SOUNDS, render_kit
from audiox_turbo.data.world.synth import n_samples, normalize_peak, place, rms

SYNTHETIC_KEPT = ("knock", "clock tick", "beeps", "water drip", "bell")
"""Synthetic effect classes with no recorded counterpart among the sources."""
REGULAR = {"footsteps": (1.6, 2.4), "heartbeat": (1.0, 1.6)}
"""One-shot kit sounds that repeat at a steady rate (events per second range)."""
AMBIENCES: dict[str, tuple[str, ...]] = {
    "rainy day": ("rain",),
    "seaside": ("waves", "wind"),
    "riverside": ("stream",),
    "windy hill": ("wind",),
    "busy road": ("car engine", "car passing"),
    "room tone": (),
}
"""Background beds and the kit sounds they are made of (room tone: a faint hum)."""
ROOM_PROBABILITY = 0.4


def _kit_effect(name: str) -> Callable[[np.random.Generator, float, int], Effect]:
    sound = GS_SOUNDS[name]

    def render(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
        length = n_samples(duration, sample_rate)
        if sound.continuous:
            return Effect(render_kit(name, [0], length, sample_rate), [], {"source": "FluidR3_GS"})
        if name in REGULAR:
            rate = float(rng.uniform(*REGULAR[name]))
            times = np.arange(float(rng.uniform(0.1, 0.4)), duration - sound.hold, 1.0 / rate)
        else:
            count = int(rng.integers(1, max(2, min(5, int(duration / (sound.hold + 0.4))) + 1)))
            gap = (duration - 0.2) / count
            times = 0.1 + gap * np.arange(count) + rng.uniform(0, 0.5 * gap - 0.05, count)
        starts = [n_samples(float(t), sample_rate) for t in times]
        audio = render_kit(name, starts, length, sample_rate)
        return Effect(audio, [s / sample_rate for s in starts], {"source": "FluidR3_GS"})

    return render


def _animal_effect(name: str) -> Callable[[np.random.Generator, float, int], Effect]:
    def render(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
        length = n_samples(duration, sample_rate)
        if name == "dog barking" and rng.random() < 0.5:
            return _kit_effect("dog bark")(rng, duration, sample_rate)
        rec = animal_recording(name, sample_rate)
        loud = np.flatnonzero(np.abs(rec) > 0.05 * np.max(np.abs(rec)))
        rec = rec[loud[0] : loud[-1] + 1]
        out = np.zeros(length)
        start = n_samples(float(rng.uniform(0.05, max(0.06, 0.4 * duration))), sample_rate)
        place(out, rec, start)
        return Effect(out, [start / sample_rate], {"source": "BigSoundBank"})

    return render


REAL_EFFECTS: dict[str, Callable[[np.random.Generator, float, int], Effect]] = {
    **{name: _kit_effect(name) for name in GS_SOUNDS if name != "dog bark"},
    **{name: _animal_effect(name) for name in ANIMALS},
    **{name: effects.EFFECTS[name] for name in SYNTHETIC_KEPT},
}
"""Every effect class of the real world by the name used in labels and captions."""


def ambience(rng: np.random.Generator, name: str, duration: float, sample_rate: int) -> np.ndarray:
    """A background bed `name` of held kit sounds over a faint hum, unit RMS `(samples,)`."""
    length = n_samples(duration, sample_rate)
    bed = 0.05 * np.sin(2 * np.pi * 50.0 * np.arange(length) / sample_rate)
    bed += 0.02 * rng.standard_normal(length)
    for part in AMBIENCES[name]:
        sound = render_kit(part, [0], length, sample_rate)
        bed += sound / max(rms(sound), 1e-9)
    return bed / max(rms(bed), 1e-9)


def render_real_effect(
    rng: np.random.Generator,
    name: str,
    duration: float,
    sample_rate: int,
    background: str | None,
    room: str | None,
    background_db: float = -18.0,
) -> Effect:
    """Effect `name`, heard in `room` (or dry), over ambience `background` (or none)."""
    effect = REAL_EFFECTS[name](rng, duration, sample_rate)
    audio = effect.audio
    if room is not None:
        audio = rooms.reverberate(audio, room, sample_rate)
    if background is not None:
        bed = ambience(rng, background, duration, sample_rate)
        audio = audio + bed * rms(audio) * 10.0 ** (background_db / 20.0)
    return Effect(normalize_peak(audio), effect.events, effect.details)
