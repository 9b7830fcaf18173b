"""The beat grid: a tempo stated in a prompt ("at 120 BPM") as per-latent-frame beat phase.

A number in a caption is a weak signal for a text encoder; the grid gives the denoiser the
beat where it acts, on the time axis, as a per-frame conditioning like the video's sync
features (knowledge-informed beat conditioning: Mustango, Melechovsky et al. 2024).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch

BEAT_FEATURES = 4
"""cos/sin of the beat phase and of twice it (the off-beat)."""

FIRST_BEAT_S = 0.1
"""Where generation puts the first beat: the world's pieces start 0.02–0.2 s into a clip."""

TEMPO_RANGE = (30.0, 300.0)
"""Tempos outside this range are not read as tempos."""

_TEMPO = re.compile(
    r"(?<![\d.])(\d{2,3}(?:\.\d+)?)\s*(?:bpm\b|beats?\s+(?:per|a)\s+minute)"
    r"|\btempo\s*(?:of\s*|=\s*|:\s*)?(\d{2,3}(?:\.\d+)?)(?![\d.])",
    re.IGNORECASE,
)


def parse_tempo(text: str | None) -> float | None:
    """The tempo a prompt states, in beats per minute ("96 BPM", "tempo 96", "96 beats per
    minute"), or None when it states none in `TEMPO_RANGE`."""
    if not text:
        return None
    for match in _TEMPO.finditer(text):
        value = float(match.group(1) or match.group(2))
        if TEMPO_RANGE[0] <= value <= TEMPO_RANGE[1]:
            return value
    return None


def first_beat(event_times: Sequence[float], tempo: float) -> float:
    """The beat grid's phase (s, in [0, 60 / tempo)) that fits a clip's note onsets: their
    circular mean on the beat period, so off-beat notes pull it little."""
    period = 60.0 / tempo
    angles = [2.0 * math.pi * t / period for t in event_times]
    mean = math.atan2(sum(map(math.sin, angles)), sum(map(math.cos, angles)))
    return (mean % (2.0 * math.pi)) / (2.0 * math.pi) * period


def beat_grid(
    tempo: torch.Tensor, first: torch.Tensor, frames: int, latent_rate: float
) -> torch.Tensor:
    """Beat-phase features (B, frames, BEAT_FEATURES) at each latent frame's centre, for
    tempo (B,) BPM (0 = none: zero features) and first beat (B,) s from the output's start."""
    tempo = tempo.double()
    centre = (torch.arange(frames, dtype=torch.float64, device=tempo.device) + 0.5) / latent_rate
    phase = 2.0 * math.pi * (centre[None] - first.double()[:, None]) * tempo[:, None] / 60.0
    grid = torch.stack([phase.cos(), phase.sin(), (2 * phase).cos(), (2 * phase).sin()], -1)
    return (grid * (tempo > 0)[:, None, None]).float()


def prompt_tempos(
    texts: Sequence[str | None] | None, present: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Tempo (B,) BPM stated by each sample's text, 0 where none is stated or the text is
    absent or dropped (`present` (B,) bool)."""
    if texts is None:
        return torch.zeros(batch_size, dtype=torch.float64)
    stated = [parse_tempo(t) or 0.0 for t in texts]
    return torch.tensor(stated, dtype=torch.float64) * present.cpu()


def clip_first_beat(labels: dict, crop_start: float) -> float:
    """The first beat (s) of a crop starting `crop_start` s into a clip whose labels give its
    `tempo` and note onsets `event_times`; `FIRST_BEAT_S` when they do not."""
    tempo, events = labels.get("tempo"), labels.get("event_times")
    if not tempo or not events:
        return FIRST_BEAT_S
    return (first_beat(events, float(tempo)) - crop_start) % (60.0 / float(tempo))
