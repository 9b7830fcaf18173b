"""espeak-ng speech synthesis through its C API (the library of the `espeakng-loader` wheel).

Synthesis is synchronous into a callback; word events give each word's start in the audio.
The library keeps global state, so one process renders one utterance at a time.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from audiox_turbo.data.world.sources.catalog import require

AUDIO_OUTPUT_RETRIEVAL = 1
EVENT_WORD = 1
PARAM_RATE, PARAM_PITCH, PARAM_RANGE = 1, 3, 4


class _Event(ctypes.Structure):
    _fields_ = [  # the layout of espeak_EVENT
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Spoken:
    """espeak-ng output: int16-scaled float64 audio `(samples,)` at `sample_rate`, and the start
    (seconds) of each word."""

    audio: np.ndarray
    sample_rate: int
    word_starts: list[float]


class _Engine:
    def __init__(self) -> None:
        import espeakng_loader

        require("espeak")
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.rate = int(self.lib.espeak_Initialize(AUDIO_OUTPUT_RETRIEVAL, 0, data, 0))
        self.chunks: list[np.ndarray] = []
        self.words: list[int] = []
        self.callback = _CALLBACK(self._collect)
        self.lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (count,)).astype(np.float64))
        i = 0
        while events[i].type != 0:
            if events[i].type == EVENT_WORD:
                self.words.append(int(events[i].audio_position))
            i += 1
        return 0

    def speak(self, text: str, voice: str, words_per_minute: int, pitch: int) -> Spoken:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(PARAM_RATE, words_per_minute, 0)
        self.lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
        self.chunks, self.words = [], []
        encoded = text.encode()
        self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self.chunks) / 32768.0 if self.chunks else np.zeros(0)
        return Spoken(audio, self.rate, [ms / 1000.0 for ms in self.words])


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


def speak(text: str, voice: str = "en-us", words_per_minute: int = 160, pitch: int = 50) -> Spoken:
    """Render `text` with espeak-ng voice `voice` (language, optionally "+variant")."""
    return _engine().speak(text, voice, words_per_minute, pitch)
