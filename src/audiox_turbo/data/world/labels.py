"""The world's label vocabulary, built once: categories, each source family's class names
("category:class"), the label keys every clip carries, and which labels can be measured (the
judge's shared vocabulary is `judge_vocabulary`)."""

from __future__ import annotations

from typing import Any

from audiox_turbo.data.world.effects import EFFECTS
from audiox_turbo.data.world.instruments import DRUM_KIT, LEAD_INSTRUMENTS
from audiox_turbo.data.world.real_effects import REAL_EFFECTS
from audiox_turbo.data.world.sources.gm import DRUM_FAMILY, MUSICAL_FAMILIES

CATEGORIES = ("music", "sfx", "speech")
CLASSES = (
    *(f"music:{name}" for name in (*LEAD_INSTRUMENTS, DRUM_KIT)),
    *(f"sfx:{name}" for name in EFFECTS),
    "speech:speech",
)
"""Every class of the synthetic world (`--sources synthetic`) as "category:class"."""
REAL_CLASSES = (
    *(f"music:{family}" for family in (*MUSICAL_FAMILIES, DRUM_FAMILY) if family != "bass"),
    *(f"sfx:{name}" for name in sorted({*REAL_EFFECTS, "ball bounce", "beeps"})),
    "speech:speech",
)
"""Every class of the real-source world (`--sources real`): music by the lead's GM family."""


def instrument_labels(labels: dict[str, Any]) -> list[str]:
    """What a music clip plays, in the vocabulary of its world: GM families (real sources) or
    synthetic instrument names."""
    families = labels.get("families")
    return list(families) if families is not None else list(labels["instruments"])


def empty_labels() -> dict[str, Any]:
    """Every label key the world writes, unset; clips fill the ones that apply."""
    return {
        "category": None,
        "class": None,
        "instruments": [],
        "tempo": None,
        "key": None,
        "mode": None,
        "texture": None,
        "event_times": [],
        "speaker": None,
        "scene": None,
        "ambience": None,
        "details": {},
        "task": None,
        "task_region": None,
    }


def class_label(labels: dict[str, Any]) -> str:
    """The class name of a clip's labels: "category:class"."""
    return f"{labels.get('category')}:{labels.get('class')}"


def has_measurable_key(labels: dict[str, Any]) -> bool:
    """Whether a clip's key can be measured: it has a key and a pitched instrument plays."""
    drums = (DRUM_KIT, DRUM_FAMILY)
    return labels.get("key") is not None and any(i not in drums for i in instrument_labels(labels))
