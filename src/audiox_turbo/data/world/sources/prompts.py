"""Recorded English prompts (Asterisk core sounds, voice of Allison Smith): text and audio.

Audio is G.722 at 16 kHz (decoded with the `G722` wheel); the transcripts are lines
`name: text` in `core-sounds-en.txt.gz`, where bracketed parts are notes, not speech.
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache

import numpy as np

from audiox_turbo.data.world.sources.catalog import require

PROMPT_RATE = 16000
SPEAKER = {"name": "Allison", "gender": "female", "language": "English", "source": "recorded"}


@lru_cache(maxsize=1)
def transcripts() -> dict[str, str]:
    """Spoken text of every recorded prompt with speech, by prompt name (sorted by name)."""
    folder = require("prompts")
    text = gzip.decompress(require("transcripts").read_bytes()).decode("utf-8", "replace")
    found = {}
    for line in text.splitlines():
        name, sep, said = line.partition(":")
        said = re.sub(r"\[[^\]]*\]", "", said).strip()
        words = re.sub(r"[^A-Za-z' ]+", " ", said).split()
        if sep and "/" not in name and len(words) >= 2 and (folder / f"{name}.g722").is_file():
            found[name.strip()] = " ".join(said.split())
    return dict(sorted(found.items()))


def prompt_audio(name: str) -> np.ndarray:
    """The decoded prompt `name` as float64 `(samples,)` at 16 kHz, in [-1, 1]."""
    import G722

    data = (require("prompts") / f"{name}.g722").read_bytes()
    pcm = np.asarray(G722.G722(PROMPT_RATE, 64000).decode(data), dtype=np.int16)
    return pcm.astype(np.float64) / 32768.0
