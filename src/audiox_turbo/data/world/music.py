"""Music: composes a piece (tempo, key, texture, 1-3 instruments) as notes, then renders it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiox_turbo.data.world.instruments import DRUM_KIT, DRUM_PARTS, LEAD_INSTRUMENTS, PITCHED
from audiox_turbo.data.world.synth import midi_to_hz, n_samples, normalize_peak, place

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
TEXTURES = ("melody", "chords", "arpeggio", "drum pattern")
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4), (0, 3, 6, 4)),
}
"""Chord progressions as 0-based scale degrees, one chord per 4/4 bar."""

TEMPO_RANGE = (60, 180)
ON_BEAT, OFF_BEAT = 1.0, 0.45
"""Velocities of notes on and between beats: beats stay the strongest periodicity."""


@dataclass(frozen=True)
class Note:
    """One note or drum hit: onset and held time in seconds, MIDI pitch or drum piece name."""

    onset: float
    held: float
    instrument: str
    velocity: float
    midi: int | None = None
    drum: str | None = None


@dataclass(frozen=True)
class Piece:
    """A composed piece: the facts that label it and the notes that render it."""

    tempo: int
    key: str
    mode: str
    texture: str
    instruments: tuple[str, ...]
    notes: tuple[Note, ...]

    @property
    def onsets(self) -> list[float]:
        """Distinct note onsets in seconds, sorted."""
        return sorted({n.onset for n in self.notes})


class _Harmony:
    """Scale and chord pitches of one key, folded into a MIDI pitch range."""

    def __init__(self, tonic_pc: int, mode: str, low: int, high: int) -> None:
        self.tonic = 60 + tonic_pc
        self.scale = SCALES[mode]
        self.low, self.high = low, high

    def degree(self, d: int, octave: int = 0) -> int:
        """MIDI pitch of scale degree d (any integer) above the tonic, shifted by octaves."""
        o, i = divmod(d, 7)
        return self.fold(self.tonic + 12 * (o + octave) + self.scale[i])

    def triad(self, d: int, octave: int = 0) -> list[int]:
        """Root-position triad on scale degree d."""
        return [self.degree(d + k, octave) for k in (0, 2, 4)]

    def fold(self, midi: int) -> int:
        """Move a pitch by octaves into [low, high]."""
        while midi < self.low:
            midi += 12
        while midi > self.high:
            midi -= 12
        return midi


def compose(
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
    texture: str | None = None,
    instruments: tuple[str, ...] | None = None,
    pitch_range: tuple[int, int] = (48, 88),
) -> Piece:
    """Draw tempo, key, mode, texture and instruments (unless given) and compose notes to fill
    `duration` seconds; onsets fall exactly on samples of `sample_rate`."""
    tempo = int(rng.integers(TEMPO_RANGE[0], TEMPO_RANGE[1] + 1))
    tonic_pc = int(rng.integers(12))
    mode = str(rng.choice(list(SCALES)))
    texture = texture or str(rng.choice(TEXTURES))
    if instruments is None:
        instruments = _draw_instruments(rng, texture)
    beat = 60.0 / tempo
    start = float(rng.uniform(0.02, 0.2))
    n_beats = int(np.floor((duration - start) / beat))
    harmony = _Harmony(tonic_pc, mode, *pitch_range)
    progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    chords = [progression[(b // 4) % 4] for b in range(n_beats)]
    notes: list[Note] = []
    for role, name in enumerate(instruments):
        if name == DRUM_KIT:
            notes += _drums(n_beats, beat)
        elif name == "bass":
            notes += _bass(chords, beat, harmony)
        elif role == 0:
            part = {"melody": _melody, "chords": _chords, "arpeggio": _arpeggio}[texture]
            notes += part(rng, chords, beat, harmony, name)
        else:
            notes += _pad(chords, beat, harmony, name)

    def snap(t: float) -> float:
        return round((start + t) * sample_rate) / sample_rate

    snapped = tuple(
        Note(snap(n.onset), n.held, n.instrument, n.velocity, n.midi, n.drum)
        for n in sorted(notes, key=lambda n: (n.onset, n.instrument, n.midi or 0))
        if start + n.onset < duration
    )
    return Piece(tempo, PITCH_CLASSES[tonic_pc], mode, texture, tuple(instruments), snapped)


def _draw_instruments(rng: np.random.Generator, texture: str) -> tuple[str, ...]:
    """1-3 instruments: the texture's lead (or the drum kit), then accompaniment."""
    count = int(rng.integers(1, 4))
    if texture == "drum pattern":
        chosen = [DRUM_KIT]
        pool = ["bass", *LEAD_INSTRUMENTS]
    else:
        chosen = [str(rng.choice(LEAD_INSTRUMENTS))]
        pool = ["bass", DRUM_KIT, *(n for n in LEAD_INSTRUMENTS if n != chosen[0])]
    while len(chosen) < count:
        pick = str(rng.choice(pool))
        pool.remove(pick)
        if pick in LEAD_INSTRUMENTS:
            pool = [p for p in pool if p not in LEAD_INSTRUMENTS]
        chosen.append(pick)
    return tuple(chosen)


def _accent(b: int) -> float:
    return ON_BEAT if b % 4 == 0 else 0.85 * ON_BEAT


def _melody(
    rng: np.random.Generator, chords: list[int], beat: float, h: _Harmony, name: str
) -> list[Note]:
    notes, step = [], chords[0] if chords else 0
    for b, chord in enumerate(chords):
        split = rng.random() < 0.2
        step = chord + int(rng.choice([0, 2, 4])) if b % 4 == 0 else step + int(rng.integers(-2, 3))
        step = int(np.clip(step, -3, 10))
        if split:
            notes.append(Note(b * beat, 0.45 * beat, name, _accent(b), h.degree(step, 1)))
            nxt = step + int(rng.choice([-1, 1]))
            notes.append(Note((b + 0.5) * beat, 0.45 * beat, name, OFF_BEAT, h.degree(nxt, 1)))
        else:
            notes.append(Note(b * beat, 0.9 * beat, name, _accent(b), h.degree(step, 1)))
    return notes


def _chords(
    rng: np.random.Generator, chords: list[int], beat: float, h: _Harmony, name: str
) -> list[Note]:
    return [
        Note(b * beat, 0.85 * beat, name, 0.6 * _accent(b), p)
        for b, chord in enumerate(chords)
        for p in h.triad(chord)
    ]


def _arpeggio(
    rng: np.random.Generator, chords: list[int], beat: float, h: _Harmony, name: str
) -> list[Note]:
    """Broken chords: one chord tone per beat, rising or rising-then-falling through the bar."""
    pattern = (0, 1, 2, 3, 2, 1) if rng.random() < 0.5 else (0, 1, 2, 3)
    notes = []
    for b, chord in enumerate(chords):
        tones = [*h.triad(chord), h.degree(chord, 1)]
        pitch = tones[pattern[b % len(pattern)]]
        notes.append(Note(b * beat, 0.9 * beat, name, _accent(b), pitch))
    return notes


def _pad(chords: list[int], beat: float, h: _Harmony, name: str) -> list[Note]:
    """Accompaniment: the bar's chord held from its downbeat, softly."""
    return [
        Note(b * beat, 3.8 * beat, name, 0.35, p)
        for b, chord in enumerate(chords)
        if b % 4 == 0
        for p in h.triad(chord, -1)
    ]


def _bass(chords: list[int], beat: float, h: _Harmony) -> list[Note]:
    low = _Harmony(0, "major", 28, 52)
    return [
        Note(b * beat, 0.8 * beat, "bass", 0.8 * _accent(b), low.fold(h.degree(chord) - 24))
        for b, chord in enumerate(chords)
    ]


def _drums(n_beats: int, beat: float) -> list[Note]:
    """Rock beat: kick on 1 and 3, snare on 2 and 4, hi-hat on every beat."""
    notes = []
    for b in range(n_beats):
        piece = "kick" if b % 2 == 0 else "snare"
        notes.append(Note(b * beat, 0.1, DRUM_KIT, _accent(b), drum=piece))
        notes.append(Note(b * beat, 0.05, DRUM_KIT, 0.5, drum="hihat"))
    return notes


def render(piece: Piece, duration: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mono waveform of the piece, shape (round(duration·sample_rate),), peak 0.8."""
    out = np.zeros(n_samples(duration, sample_rate))
    for note in piece.notes:
        if note.drum is not None:
            sound = DRUM_PARTS[note.drum](note.velocity, sample_rate, rng)
        else:
            freq = midi_to_hz(float(note.midi))
            sound = PITCHED[note.instrument](freq, note.held, note.velocity, sample_rate, rng)
        place(out, sound, n_samples(note.onset, sample_rate))
    return normalize_peak(out)
