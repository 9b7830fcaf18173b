"""Task framings: which conditions a clip is used with (text, video, a partial audio prompt)."""

from __future__ import annotations

import numpy as np

AUDIO_TASKS = {
    ("music", False): ("T2M", "inpaint", "continue"),
    ("music", True): ("V2M", "TV2M"),
    ("sfx", False): ("T2A", "inpaint"),
    ("sfx", True): ("V2A", "TV2A"),
    ("speech", False): ("T2A", "inpaint"),
    ("speech", True): ("V2A", "TV2A"),
}
"""Framings allowed per (category, has video): continuation is for music only, V*/TV* need video."""


def draw_task(
    rng: np.random.Generator, category: str, has_video: bool, duration: float
) -> tuple[str, list[float] | None]:
    """A task and, for inpaint/continue, the [start, end] seconds to generate (rest given)."""
    task = str(rng.choice(AUDIO_TASKS[(category, has_video)]))
    if task == "inpaint":
        length = float(rng.uniform(0.2, 0.5)) * duration
        start = float(rng.uniform(0.1 * duration, 0.9 * duration - length))
        return task, [round(start, 3), round(start + length, 3)]
    if task == "continue":
        return task, [round(float(rng.uniform(0.3, 0.6)) * duration, 3), duration]
    return task, None
