"""Captions written from a clip's labels: 3-4 distinct wordings that all state its key facts."""

from __future__ import annotations

from typing import Any

import numpy as np

TEXTURE_NOUNS = {
    "melody": "melody",
    "chords": "chord progression",
    "arpeggio": "arpeggio",
    "drum pattern": "drum pattern",
}
SFX_PHRASES = {
    "impact": ("heavy impact thuds", "objects hitting the floor with a dull impact"),
    "knock": ("knocking on a wooden door", "a knock, then another, on a door"),
    "footsteps": ("footsteps on a hard floor", "someone walking, footsteps evenly spaced"),
    "engine": ("a running car engine", "an engine idling and revving"),
    "siren": ("an emergency siren", "a wailing police siren"),
    "rain": ("steady rain falling", "rain pattering on a surface"),
    "wind": ("wind blowing in gusts", "howling wind"),
    "bell": ("a ringing bell", "a bell struck and left to ring"),
    "clock tick": ("the clock tick of a wall clock", "a steady clock tick"),
    "beeps": ("alarm beeps", "electronic beeps repeating at a fixed rate"),
    "water drip": ("a water drip into a basin", "water dripping, drip after drip"),
    "applause": ("an audience's applause", "applause and clapping from a crowd"),
    "thunder": ("a thunder clap and rumble", "rolling thunder"),
    "bird chirps": ("bird chirps in the trees", "small birds singing, quick bird chirps"),
}
"""Noun phrases per effect class; each contains the class name so captions state it."""


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pick(rng: np.random.Generator, pool: list[str], count: int, keep_first: bool) -> list[str]:
    """`count` distinct captions drawn from the pool; with keep_first the first always leads."""
    unique = list(dict.fromkeys(pool))
    if not keep_first:
        return [unique[i] for i in rng.permutation(len(unique))[:count]]
    rest = [unique[i] for i in rng.permutation(np.arange(1, len(unique)))[: count - 1]]
    return [unique[0], *rest]


def music_captions(labels: dict[str, Any], scene: str | None) -> list[str]:
    """Wordings of a music clip; each names every instrument, the tempo, key and mode."""
    instr = _join(labels["instruments"])
    tempo, key, mode = labels["tempo"], labels["key"], labels["mode"]
    texture = TEXTURE_NOUNS[labels["texture"]]
    mood = "bright, cheerful" if mode == "major" else "dark, melancholic"
    pace = "slow" if tempo < 90 else "moderate" if tempo < 130 else "fast"
    pool = [
        f"A {mood} {texture} played on {instr} at {tempo} BPM in {key} {mode}.",
        f"{_cap(instr)}: a {texture} in {key} {mode}, {tempo} beats per minute.",
        f"{_cap(pace)} {mode}-key music at {tempo} BPM featuring {instr}.",
        f"{tempo} BPM {texture} on {instr}, {key} {mode}, with a {mood} feel.",
        f"Instrumental {texture} in {key} {mode} performed on {instr}, tempo {tempo} BPM.",
    ]
    if scene == "keyboard":
        pool.insert(
            0,
            f"Keys of a {instr} keyboard light up as a {texture} in {key} {mode} "
            f"is played at {tempo} BPM.",
        )
    return pool


def sfx_captions(labels: dict[str, Any], scene: str | None) -> list[str]:
    """Wordings of a sound-effect clip; each contains the class name."""
    first, second = SFX_PHRASES[labels["class"]]
    amb = labels["ambience"]
    bg = f", with {amb} ambience in the background" if amb else ""
    bg2 = f" over {amb} ambience" if amb else ""
    count = len(labels["event_times"])
    pool = [
        f"The sound of {first}{bg}.",
        f"{_cap(second)}{bg2}.",
        f"A recording of {first}{bg2}.",
        f"{_cap(first)}, clearly audible{bg}.",
    ]
    if count > 1:
        pool.append(f"{_cap(first)}, {count} separate events{bg}.")
    details = labels["details"]
    if scene == "bouncing ball":
        pool.insert(0, "A red ball bounces on the floor, each contact making an impact thud.")
    elif scene == "flashing lamp":
        pool.insert(
            0, f"A lamp flashes on with each of the alarm beeps at {details['tone_hz']:.0f} Hz."
        )
    elif scene == "vehicle crossing":
        pool.insert(
            0,
            f"A car drives past {details['direction']}, its engine rising then falling in pitch.",
        )
    return pool


def speech_captions(labels: dict[str, Any], scene: str | None) -> list[str]:
    """Wordings of a speech-like clip; each states the timbre and the speaking rate."""
    sp = labels["speaker"]
    timbre, pitch, rate = sp["timbre"], round(sp["pitch_hz"]), sp["rate"]
    adverb = "slowly" if rate < 4.0 else "at a moderate pace" if rate < 5.0 else "quickly"
    pool = [
        f"A {timbre} voice speaking {adverb} in a made-up language.",
        f"Speech-like babble from a {timbre} speaker around {pitch} Hz, speaking {adverb}.",
        f"{_cap(timbre)} voice at about {pitch} Hz, talking {adverb}, "
        f"{rate:.1f} syllables a second.",
        f"Someone with a {timbre} voice utters nonsense syllables {adverb}.",
    ]
    if scene == "talking mouth":
        pool.insert(0, f"A cartoon mouth opens and closes as a {timbre} voice speaks {adverb}.")
    return pool


def write_captions(labels: dict[str, Any], rng: np.random.Generator) -> list[str]:
    """3 or 4 distinct captions for the clip's labels (scene wording first when it has video)."""
    scene = labels["scene"]
    writer = {"music": music_captions, "sfx": sfx_captions, "speech": speech_captions}
    pool = writer[labels["category"]](labels, scene)
    return _pick(rng, pool, int(rng.integers(3, 5)), keep_first=scene is not None)
