"""espeak-ng speech synthesis through its C API (the library of the `espeakng-loader` wheel).

espeak-ng keeps state between utterances (filter memories, the flutter phase, the C library's
`rand`), so each utterance is rendered in a forked child that loads the library afresh: the
same text, voice and settings always give the same samples. Word events give each word's start.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from audiox_turbo.data.world.sources.catalog import require

AUDIO_OUTPUT_RETRIEVAL = 1
EVENT_WORD = 1
PARAM_RATE, PARAM_PITCH = 1, 3
RANDOM_SEED = 1
"""Seed of the noise espeak-ng draws (its own generator and the C library's `rand`)."""


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
    """espeak-ng output: audio `(samples,)` in [-1, 1] at `sample_rate`, and the start (seconds)
    of each word."""

    audio: np.ndarray
    sample_rate: int
    word_starts: list[float]


def _synthesize(text: str, voice: str, words_per_minute: int, pitch: int) -> bytes:
    """In a fresh process: rate, word starts (ms) and int16 samples, packed little-endian."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    data = espeakng_loader.get_data_path().encode()
    rate = int(lib.espeak_Initialize(AUDIO_OUTPUT_RETRIEVAL, 0, data, 0))
    ctypes.CDLL(None).srand(RANDOM_SEED)  # the child inherits the parent's `rand` state
    lib.espeak_ng_SetRandSeed(RANDOM_SEED)
    pcm: list[bytes] = []
    words: list[int] = []

    def collect(wav: Any, count: int, events: Any) -> int:
        if count > 0:
            pcm.append(ctypes.string_at(wav, 2 * count))
        i = 0
        while events[i].type != 0:
            if events[i].type == EVENT_WORD:
                words.append(int(events[i].audio_position))
            i += 1
        return 0

    callback = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        return struct.pack("<i", -1)
    lib.espeak_SetParameter(PARAM_RATE, words_per_minute, 0)
    lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
    encoded = text.encode()
    lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, 0, None, None)
    lib.espeak_Synchronize()
    return struct.pack(f"<ii{len(words)}i", rate, len(words), *words) + b"".join(pcm)


def speak(text: str, voice: str = "en-us", words_per_minute: int = 160, pitch: int = 50) -> Spoken:
    """Render `text` with espeak-ng voice `voice` (language, optionally "+variant")."""
    require("espeak")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: render, write, leave without running the parent's cleanup
        status = 1
        try:
            os.close(read_end)
            payload = _synthesize(text, voice, words_per_minute, pitch)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or len(payload) < 8:
        if payload[:4] == struct.pack("<i", -1):
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        raise RuntimeError(f"espeak-ng failed to render {text!r} with voice {voice!r}")
    rate, count = struct.unpack("<ii", payload[:8])
    starts = struct.unpack(f"<{count}i", payload[8 : 8 + 4 * count])
    pcm = np.frombuffer(payload[8 + 4 * count :], dtype="<i2").astype(np.float64) / 32768.0
    return Spoken(pcm, rate, [ms / 1000.0 for ms in starts])
