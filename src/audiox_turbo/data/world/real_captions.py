"""Captions of real-source clips: varied wordings stating instruments (GM names), tempo, key,
what is said and by whom, how many events, the room and the ambience."""

from __future__ import annotations

from typing import Any

from audiox_turbo.data.world.captions import TEXTURE_NOUNS, _cap, _join

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _count(n: int, noun: str) -> str:
    word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"{word} {noun}{'' if n == 1 else 's'}"


def real_music_captions(labels: dict[str, Any], scene: str | None) -> list[str]:
    """Wordings of a sampled music clip; each names every instrument, the tempo, key and mode."""
    instr = _join(labels["instruments"])
    tempo, key, mode = labels["tempo"], labels["key"], labels["mode"]
    texture = TEXTURE_NOUNS[labels["texture"]]
    pace = "slow" if tempo < 90 else "mid-tempo" if tempo < 130 else "upbeat"
    mood = "happy" if mode == "major" else "sad"
    pool = [
        f"A {pace} {texture} played on {instr} at {tempo} BPM in {key} {mode}.",
        f"{_cap(instr)} playing a {mood} {texture} in {key} {mode}, {tempo} beats per minute.",
        f"{tempo} BPM, {key} {mode}: {instr}.",
        f"Make a {mood} {texture} in {key} {mode} at {tempo} BPM with {instr}.",
        f"Instrumental music, {instr}, {key} {mode}, tempo {tempo}, {labels['texture']}.",
    ]
    if scene == "keyboard":
        pool.insert(0, f"Keys light up on a keyboard as a grand piano plays a {texture} in "
                       f"{key} {mode} at {tempo} BPM.")  # fmt: skip
    return pool


def real_sfx_captions(labels: dict[str, Any], scene: str | None) -> list[str]:
    """Wordings of a sound-effect clip; each contains the class name."""
    name = labels["class"]
    amb, room = labels.get("ambience"), labels.get("room")
    where = f" in a {room}" if room else ""
    bg = f" with {amb} ambience behind it" if amb else ""
    count = len(labels["event_times"])
    pool = [
        f"The sound of {name}{where}{bg}.",
        f"{_cap(name)}{where}, recorded up close{bg}.",
        f"A clip of {name}{bg}{where}.",
        f"{_cap(name)}{bg}.",
    ]
    if count >= 1:
        pool.append(f"{_cap(name)}: {_count(count, 'event')}{where}{bg}.")
    if scene == "bouncing ball":
        pool.insert(0, f"A red ball bounces {_count(count, 'time')}, each landing a thud.")
    elif scene == "barking dog":
        pool.insert(0, f"A cartoon dog opens its mouth and barks {_count(count, 'time')}.")
    elif scene == "flashing lamp":
        hz = labels["details"]["tone_hz"]
        pool.insert(0, f"A lamp flashes with each of {_count(count, 'beep')} at {hz:.0f} Hz.")
    elif scene == "vehicle crossing":
        way = labels["details"]["direction"]
        pool.insert(0, f"A car passes by {way}, its engine rising then falling in pitch.")
    return pool


def real_speech_captions(labels: dict[str, Any], scene: str | None) -> list[str]:
    """Wordings of a speech clip; each quotes the words and says who speaks them."""
    sp, words = labels["speaker"], labels["words"].rstrip(".!?, ")
    person = {"male": "a man", "female": "a woman"}[sp["gender"]]
    language = sp["language"]
    how = "in a recorded voice" if sp["source"] == "recorded" else "in a synthetic voice"
    where = f" in a {labels['room']}" if labels.get("room") else ""
    pool = [
        f'{_cap(person)} says "{words}"{where}.',
        f'{_cap(person)} speaking {language}: "{words}".',
        f'"{words}", said by {person} {how}{where}.',
        f'{language} speech, {person}: "{words}".',
    ]
    if scene == "talking mouth":
        pool.insert(0, f'A cartoon face moves its mouth as {person} says "{words}".')
    return pool
