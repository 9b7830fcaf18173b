"""Music through sampled instruments: the world's composed pieces played by General MIDI
programs and drum kits of FluidR3_GM (and the AVL acoustic kit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audiox_turbo.data.world import music
from audiox_turbo.data.world.instruments import DRUM_KIT
from audiox_turbo.data.world.sources.gm import (
    DRUM_FAMILY,
    DRUM_KEYS,
    DRUM_KITS,
    MUSICAL_FAMILIES,
    PROGRAMS,
    family_of,
    melodic_patch,
)
from audiox_turbo.data.world.sources.soundfont import NoteEvent, Patch, render_notes
from audiox_turbo.data.world.synth import normalize_peak

LEAD_PROGRAMS = tuple(
    p for p in range(112) if family_of(p) in MUSICAL_FAMILIES and family_of(p) != "bass"
)
"""Programs that may carry a melody, chords or an arpeggio (no bass, no effects)."""
BASS_PROGRAMS = tuple(range(32, 40))
PAD_PROGRAMS = (*range(48, 56), *range(88, 96), 16, 19, 40, 42)
"""Programs that hold the accompanying chords (ensembles, pads, organs, violin, cello)."""
KITS: dict[str, Patch] = {**DRUM_KITS, "acoustic kit": Patch("avldrums", 0, 0, drums=True)}


@dataclass(frozen=True)
class Band:
    """Who plays: lead program (None for a drum pattern), pad and bass programs, drum kit."""

    lead: int | None
    pad: int | None
    bass: int | None
    kit: str | None

    def programs(self) -> list[int | None]:
        """GM program of each instrument in role order (lead, or the kit of a drum pattern,
        first; None for a drum kit)."""
        progs: list[int | None] = [p for p in (self.lead, self.pad, self.bass) if p is not None]
        if self.kit is None:
            return progs
        return [None, *progs] if self.lead is None else [*progs, None]

    def names(self) -> list[str]:
        """Instrument names in the order of `programs`, as labels and captions use them."""
        return [str(self.kit) if p is None else PROGRAMS[p] for p in self.programs()]

    def families(self) -> list[str]:
        """GM family of each instrument of `programs` ("drums" for a kit)."""
        return [DRUM_FAMILY if p is None else family_of(p) for p in self.programs()]


def draw_band(rng: np.random.Generator, texture: str) -> Band:
    """A lead (or a kit, for a drum pattern) and 0-2 of pad, bass, drums."""
    lead = None if texture == "drum pattern" else int(rng.choice(LEAD_PROGRAMS))
    extras = ["pad", "bass"] + ([] if lead is None else ["kit"])
    chosen = set(rng.permutation(extras)[: int(rng.integers(0, 3))].tolist())
    kit = str(rng.choice(list(KITS))) if lead is None or "kit" in chosen else None
    return Band(
        lead,
        int(rng.choice(PAD_PROGRAMS)) if "pad" in chosen else None,
        int(rng.choice(BASS_PROGRAMS)) if "bass" in chosen else None,
        kit,
    )


def compose(
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
    texture: str | None = None,
    band: Band | None = None,
    pitch_range: tuple[int, int] = (48, 88),
) -> tuple[music.Piece, Band]:
    """A piece composed as in the synthetic world, for a band of GM instruments."""
    texture = texture or str(rng.choice(music.TEXTURES))
    band = band or draw_band(rng, texture)
    roles = [name for name, on in (("lead", band.lead), ("pad", band.pad)) if on is not None]
    roles += ["bass"] * (band.bass is not None) + [DRUM_KIT] * (band.kit is not None)
    if band.lead is None:
        roles = [DRUM_KIT, *[r for r in roles if r != DRUM_KIT]]
    piece = music.compose(rng, duration, sample_rate, texture, tuple(roles), pitch_range)
    return piece, band


def render(piece: music.Piece, band: Band, length: int, sample_rate: int) -> np.ndarray:
    """Mono audio `(length,)` of the piece on the band's instruments, peak 0.8; every note
    starts at exactly its onset sample."""
    patches = {
        "lead": melodic_patch(band.lead or 0),
        "pad": melodic_patch(band.pad or 0),
        "bass": melodic_patch(band.bass or 0),
        DRUM_KIT: KITS[band.kit] if band.kit else None,
    }
    by_font: dict[str, list[NoteEvent]] = {}
    for note in piece.notes:
        patch = patches[note.instrument]
        assert patch is not None
        start = round(note.onset * sample_rate)
        key = DRUM_KEYS[note.drum] if note.drum is not None else int(note.midi or 60)
        velocity = int(np.clip(round(20 + 100 * note.velocity), 1, 127))
        stop = start + max(1, round(note.held * sample_rate))
        by_font.setdefault(patch.font, []).append(NoteEvent(start, stop, patch, key, velocity))
    out = np.zeros(length)
    for font in sorted(by_font):
        out += render_notes(by_font[font], length, sample_rate)
    return normalize_peak(out)


def music_labels(piece: music.Piece, band: Band) -> dict[str, Any]:
    """The labels of a sampled piece: class = the lead's GM family, instruments, programs,
    families, tempo, key, mode, texture and note onsets."""
    families = band.families()
    return {
        "category": "music",
        "class": families[0],
        "instruments": band.names(),
        "programs": band.programs(),
        "families": families,
        "tempo": piece.tempo,
        "key": piece.key,
        "mode": piece.mode,
        "texture": piece.texture,
        "event_times": piece.onsets,
    }
