"""SoundFont rendering (tinysoundfont): notes on a sample grid → mono audio, sample-exact.

One synthesiser per (font, sample rate) per process; every render ends by cutting its voices
and rendering past their release, then unassigning its channels, so the next render starts from
silence and the same notes always give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from audiox_turbo.data.world.sources.catalog import require

DRUM_BANK = 128
FLUSH_SECONDS = 0.1
"""Audio rendered and dropped after cutting all voices (their fast release is 10 ms), so no
sound of one render leaks into the next."""


@dataclass(frozen=True)
class Patch:
    """A preset of one font: source name ("gm", "gs", "avldrums"), bank, preset, drums or not."""

    font: str
    bank: int
    preset: int
    drums: bool = False


@dataclass(frozen=True)
class NoteEvent:
    """A note from sample `start` to sample `stop` (note-off), MIDI key and velocity 1-127."""

    start: int
    stop: int
    patch: Patch
    key: int
    velocity: int


@lru_cache(maxsize=8)
def _synth(font_path: str, sample_rate: int) -> tuple[Any, int]:
    import tinysoundfont

    synth = tinysoundfont.Synth(gain=0.0, samplerate=sample_rate)
    return synth, synth.sfload(font_path)


def synth_for(font: str, sample_rate: int) -> tuple[Any, int]:
    """The process's synthesiser and soundfont id for source `font` at `sample_rate`."""
    require("renderer")
    return _synth(str(require(font)), sample_rate)


def preset_name(patch: Patch, sample_rate: int = 16000) -> str | None:
    """The font's name for a preset, or None if the font has no such preset."""
    synth, sfid = synth_for(patch.font, sample_rate)
    return synth.sfpreset_name(sfid, patch.bank, patch.preset)


def render_notes(notes: list[NoteEvent], length: int, sample_rate: int) -> np.ndarray:
    """Mono float64 audio `(length,)` of the notes (all from one font), each starting exactly at
    its start sample; at most 15 distinct patches (one MIDI channel each, drums on 9)."""
    if not notes:
        return np.zeros(length)
    fonts = {n.patch.font for n in notes}
    if len(fonts) != 1:
        raise ValueError(f"render_notes takes one font at a time, got {sorted(fonts)}")
    synth, sfid = synth_for(fonts.pop(), sample_rate)
    channels = _assign_channels(notes)
    events = sorted(
        [(n.start, 1, channels[n.patch], n.key, n.velocity) for n in notes]
        + [(n.stop, 0, channels[n.patch], n.key, 0) for n in notes]
    )
    out = np.zeros((length, 2), dtype=np.float32)
    try:
        for patch, chan in channels.items():
            synth.program_select(chan, sfid, patch.bank, patch.preset, is_drums=patch.drums)
        pos = 0
        for sample, on, chan, key, velocity in events:
            sample = min(max(sample, 0), length)
            if sample > pos:
                out[pos:sample] = _generate(synth, sample - pos)
                pos = sample
            if on:
                synth.noteon(chan, key, velocity)
            else:
                synth.noteoff(chan, key)
        if pos < length:
            out[pos:] = _generate(synth, length - pos)
    finally:
        for chan in channels.values():
            if chan in synth.channel:
                synth.sounds_off(chan)
        _generate(synth, round(FLUSH_SECONDS * sample_rate))
        for chan in channels.values():
            if chan in synth.channel:
                synth.program_unset(chan)
    return out.mean(axis=1).astype(np.float64)


def _assign_channels(notes: list[NoteEvent]) -> dict[Patch, int]:
    patches = sorted({n.patch for n in notes}, key=lambda p: (p.drums, p.bank, p.preset))
    free = [c for c in range(16) if c != 9]
    channels: dict[Patch, int] = {}
    for patch in patches:
        channels[patch] = 9 if patch.drums and 9 not in channels.values() else free.pop(0)
    return channels


def _generate(synth: Any, count: int) -> np.ndarray:
    return np.frombuffer(synth.generate(count), dtype=np.float32).reshape(count, 2)
