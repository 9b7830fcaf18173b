"""The GS SFX kit of FluidR3_GS.sf2 (bank 128, preset 56): one key per sound effect.

Keys follow the Roland GS "SFX set" map, checked against the font's preset zones. One-shot
sounds are played at event times; continuous ones (loops) are held for the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiox_turbo.data.world.sources.soundfont import DRUM_BANK, NoteEvent, Patch, render_notes

SFX_KIT = Patch("gs", DRUM_BANK, 56, drums=True)


@dataclass(frozen=True)
class KitSound:
    """One key of the SFX kit: MIDI key, whether it loops (held) or is a one-shot, and how
    long a one-shot is held (seconds)."""

    key: int
    continuous: bool
    hold: float = 0.5


GS_SOUNDS: dict[str, KitSound] = {
    "laughter": KitSound(52, False, 1.4),
    "scream": KitSound(53, False, 1.3),
    "punch": KitSound(54, False, 0.6),
    "heartbeat": KitSound(55, False, 0.4),
    "footsteps": KitSound(56, False, 0.35),
    "applause": KitSound(58, True),
    "door creak": KitSound(59, False, 1.6),
    "door slam": KitSound(60, False, 0.8),
    "wind chimes": KitSound(62, True),
    "car engine": KitSound(63, True),
    "car braking": KitSound(64, False, 1.1),
    "car passing": KitSound(65, False, 2.5),
    "car crash": KitSound(66, False, 1.2),
    "siren": KitSound(67, True),
    "train": KitSound(68, True),
    "jet plane": KitSound(69, True),
    "helicopter": KitSound(70, True),
    "gunshot": KitSound(72, False, 1.0),
    "machine gun": KitSound(73, True),
    "laser gun": KitSound(74, False, 0.8),
    "explosion": KitSound(75, False, 1.3),
    "dog bark": KitSound(76, False, 0.2),
    "horse gallop": KitSound(77, True),
    "bird chirps": KitSound(78, False, 0.6),
    "rain": KitSound(79, True),
    "thunder": KitSound(80, True),
    "wind": KitSound(81, True),
    "waves": KitSound(82, True),
    "stream": KitSound(83, True),
    "bubbles": KitSound(84, True),
}
"""Sound-effect classes of the kit by the name used in labels and captions."""


def render_kit(
    name: str, starts: list[int], length: int, sample_rate: int, velocity: int = 110
) -> np.ndarray:
    """Mono audio `(length,)`: kit sound `name` started at each sample in `starts` (a
    continuous sound is held to the end of the clip)."""
    sound = GS_SOUNDS[name]
    notes = [
        NoteEvent(
            s,
            length if sound.continuous else s + round(sound.hold * sample_rate),
            SFX_KIT,
            sound.key,
            velocity,
        )
        for s in starts
    ]
    return render_notes(notes, length, sample_rate)
