"""The judge's vocabulary, shared by both source families: a class and an instrument list in
which a name means the same sound whether the clip was synthesised or sampled.

Music is named by instrument group: the synthetic world's timbres (piano, organ, strings, …)
and the GM programs that sound like them; GM programs with no synthetic counterpart get their
own groups (reed, choir, synth lead, synth pad, percussion). Effects and speech keep the
world's class names, with two real names folded into the synthetic one they mean.
"""

from __future__ import annotations

from typing import Any

from audiox_turbo.data.world.effects import EFFECTS
from audiox_turbo.data.world.instruments import DRUM_KIT, LEAD_INSTRUMENTS, PITCHED
from audiox_turbo.data.world.real_effects import REAL_EFFECTS

GM_GROUPS: dict[str, tuple[int, ...]] = {
    "plucked string": (*range(24, 32), 15, 45, 46, 104, 105, 106, 107),
    "piano": tuple(range(0, 8)),
    "organ": tuple(range(16, 24)),
    "strings": (40, 41, 42, 43, 44, 48, 49, 50, 51, 110),
    "brass": (*range(55, 64),),
    "bell": (8, 9, 10, 14, 112),
    "marimba": (11, 12, 13, 108, 114),
    "flute": tuple(range(72, 80)),
    "reed": (*range(64, 72), 109, 111),
    "choir": (52, 53, 54),
    "synth lead": tuple(range(80, 88)),
    "synth pad": tuple(range(88, 96)),
    "percussion": (47, 113, 115, 116, 117, 118, 119),
    "bass": tuple(range(32, 40)),
}
"""Instrument group of every GM program the world plays (0-95, 104-119; not the effects)."""
GROUP_OF_PROGRAM = {p: group for group, programs in GM_GROUPS.items() for p in programs}
MUSIC_GROUPS = (*LEAD_INSTRUMENTS, *(g for g in GM_GROUPS if g not in PITCHED), DRUM_KIT)
"""Music classes: the synthetic lead timbres first, then the GM-only groups, the drum kit."""
EFFECT_ALIASES = {"car engine": "engine", "ball bounce": "impact"}
"""Real effect names folded into the synthetic class that names the same sound."""

JUDGE_CLASSES = (
    *(f"music:{group}" for group in MUSIC_GROUPS),
    *(f"sfx:{name}" for name in EFFECTS),
    *(f"sfx:{name}" for name in sorted(set(REAL_EFFECTS) - set(EFFECTS) - set(EFFECT_ALIASES))),
    "speech:speech",
)
"""Every class the judge tells apart, as "category:class" (its class head, in order)."""
JUDGE_INSTRUMENTS = (*(g for g in MUSIC_GROUPS if g != DRUM_KIT), "bass", DRUM_KIT)
"""Every instrument group a music clip can list (the judge's multi-label instrument head)."""


def instrument_group(program: int | None) -> str:
    """The group of a GM program (None: a drum kit)."""
    return DRUM_KIT if program is None else GROUP_OF_PROGRAM[program]


def judge_class(labels: dict[str, Any]) -> str:
    """The judge class of a clip's labels: "music:<lead's group>", "sfx:<effect>" or
    "speech:speech", whichever source family made the clip."""
    category, name = labels.get("category"), labels.get("class")
    if category == "music" and labels.get("programs"):
        name = instrument_group(labels["programs"][0])
    elif category == "sfx":
        name = EFFECT_ALIASES.get(name, name)
    return f"{category}:{name}"


def judge_instruments(labels: dict[str, Any]) -> list[str]:
    """The instrument groups a music clip plays (empty for other clips)."""
    if labels.get("programs"):
        return [instrument_group(p) for p in labels["programs"]]
    return list(labels.get("instruments") or [])
