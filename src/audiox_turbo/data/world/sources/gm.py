"""General MIDI: the 128 program names, their 16 families, the drum kits and drum keys.

Names follow the GM 1 sound set (MMA, 1991), lower-cased as captions use them.
"""

from __future__ import annotations

from audiox_turbo.data.world.sources.soundfont import DRUM_BANK, Patch

PROGRAMS = (
    "acoustic grand piano", "bright acoustic piano", "electric grand piano", "honky-tonk piano",
    "electric piano 1", "electric piano 2", "harpsichord", "clavinet",
    "celesta", "glockenspiel", "music box", "vibraphone",
    "marimba", "xylophone", "tubular bells", "dulcimer",
    "drawbar organ", "percussive organ", "rock organ", "church organ",
    "reed organ", "accordion", "harmonica", "tango accordion",
    "nylon string guitar", "steel string guitar", "jazz guitar", "clean electric guitar",
    "muted electric guitar", "overdriven guitar", "distortion guitar", "guitar harmonics",
    "acoustic bass", "fingered electric bass", "picked electric bass", "fretless bass",
    "slap bass 1", "slap bass 2", "synth bass 1", "synth bass 2",
    "violin", "viola", "cello", "contrabass",
    "tremolo strings", "pizzicato strings", "orchestral harp", "timpani",
    "string ensemble 1", "string ensemble 2", "synth strings 1", "synth strings 2",
    "choir aahs", "voice oohs", "synth voice", "orchestra hit",
    "trumpet", "trombone", "tuba", "muted trumpet",
    "french horn", "brass section", "synth brass 1", "synth brass 2",
    "soprano sax", "alto sax", "tenor sax", "baritone sax",
    "oboe", "english horn", "bassoon", "clarinet",
    "piccolo", "flute", "recorder", "pan flute",
    "blown bottle", "shakuhachi", "whistle", "ocarina",
    "square lead", "sawtooth lead", "calliope lead", "chiff lead",
    "charang lead", "voice lead", "fifths lead", "bass and lead",
    "new age pad", "warm pad", "polysynth pad", "choir pad",
    "bowed pad", "metallic pad", "halo pad", "sweep pad",
    "rain fx", "soundtrack fx", "crystal fx", "atmosphere fx",
    "brightness fx", "goblins fx", "echoes fx", "sci-fi fx",
    "sitar", "banjo", "shamisen", "koto",
    "kalimba", "bagpipe", "fiddle", "shanai",
    "tinkle bell", "agogo", "steel drums", "woodblock",
    "taiko drum", "melodic tom", "synth drum", "reverse cymbal",
    "guitar fret noise", "breath noise", "seashore", "bird tweet",
    "telephone ring", "helicopter", "applause", "gunshot",
)  # fmt: skip
"""GM program names, index = program number (0-127)."""

FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive",
    "sound effects",
)  # fmt: skip
"""GM families: programs 8·k .. 8·k+7 belong to family k."""

MUSICAL_FAMILIES = tuple(f for f in FAMILIES if f not in ("synth effects", "sound effects"))
"""Families the world's music draws from (the effects families are not instruments)."""

DRUM_FAMILY = "drums"

DRUM_KITS: dict[str, Patch] = {
    "standard kit": Patch("gm", DRUM_BANK, 0, drums=True),
    "room kit": Patch("gm", DRUM_BANK, 8, drums=True),
    "power kit": Patch("gm", DRUM_BANK, 16, drums=True),
    "electronic kit": Patch("gm", DRUM_BANK, 24, drums=True),
    "tr-808 kit": Patch("gm", DRUM_BANK, 25, drums=True),
    "jazz kit": Patch("gm", DRUM_BANK, 32, drums=True),
    "brush kit": Patch("gm", DRUM_BANK, 40, drums=True),
}
"""GM drum kits of FluidR3_GM (bank 128) by caption name."""

DRUM_KEYS = {"kick": 36, "snare": 38, "hihat": 42, "low tom": 45}
"""GM percussion keys of the drum pieces the world plays."""


def family_of(program: int) -> str:
    """The GM family of a program number."""
    return FAMILIES[program // 8]


def program_of(name: str) -> int:
    """The GM program number of a program name."""
    return PROGRAMS.index(name)


def melodic_patch(program: int) -> Patch:
    """The FluidR3_GM preset of a GM program (bank 0)."""
    return Patch("gm", 0, program)
