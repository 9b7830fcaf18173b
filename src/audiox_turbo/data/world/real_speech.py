"""Intelligible speech: recorded English prompts and espeak-ng voices, with the words spoken,
the voice and where in the clip the speech is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audiox_turbo.data.world.sources import espeak, prompts
from audiox_turbo.data.world.synth import n_samples, normalize_peak, place

RECORDED_SHARE = 0.5
SILENCE_DB = -40.0
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
PHRASES: dict[str, tuple[str, ...]] = {
    "de": ("guten Morgen", "wie geht es dir", "das Wetter ist heute schön", "vielen Dank",
           "bis später", "der Zug kommt um acht Uhr"),
    "fr": ("bonjour à tous", "merci beaucoup", "il fait beau aujourd'hui", "à bientôt",
           "le train part à huit heures", "comment allez-vous"),
    "es": ("buenos días", "muchas gracias", "hace buen tiempo hoy", "hasta luego",
           "el tren sale a las ocho", "dónde está la estación"),
    "it": ("buongiorno a tutti", "grazie mille", "oggi fa bel tempo", "a presto",
           "il treno parte alle otto", "come stai"),
}  # fmt: skip
"""Phrases per non-English language (English sentences are generated)."""
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian"}
SUBJECTS = (
    "the train",
    "the meeting",
    "my brother",
    "the red car",
    "the little dog",
    "our teacher",
    "the next bus",
    "the package",
    "the old clock",
    "your order",
)
VERBS = ("arrives", "starts", "waits", "stops", "leaves", "is ready", "is late", "is here")
TIMES = (
    "at noon",
    "at seven",
    "in ten minutes",
    "tomorrow",
    "on monday",
    "right now",
    "after lunch",
    "tonight",
)
REQUESTS = (
    "please hold the line",
    "turn left at the corner",
    "open the window",
    "close the door",
    "call me back later",
    "take a seat please",
    "speak a little louder",
)
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class Speech:
    """A placed utterance: audio `(samples,)`, the words, who says them and where."""

    audio: np.ndarray
    words: str
    speaker: dict[str, Any]
    region: tuple[float, float]
    word_starts: list[float]


def english_sentence(rng: np.random.Generator) -> str:
    """A short English sentence from the world's templates."""
    kind = int(rng.integers(3))
    if kind == 0:
        return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(TIMES)}"
    if kind == 1:
        return str(rng.choice(REQUESTS))
    digits = " ".join(str(rng.choice(NUMBERS)) for _ in range(int(rng.integers(3, 6))))
    return f"the number is {digits}"


def _voiced_span(audio: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """First and one-past-last sample of the 10 ms frames within SILENCE_DB of the peak."""
    hop = max(1, sample_rate // 100)
    frames = len(audio) // hop
    energy = np.square(audio[: frames * hop]).reshape(frames, hop).mean(axis=1)
    loud = np.flatnonzero(10 * np.log10(energy + 1e-12) > 10 * np.log10(energy.max()) + SILENCE_DB)
    return int(loud[0]) * hop, (int(loud[-1]) + 1) * hop


def _recorded(
    rng: np.random.Generator, max_s: float
) -> tuple[np.ndarray, str, dict, list[float]] | None:
    """A recorded prompt whose voiced part fits in `max_s` seconds (None: none found)."""
    table = prompts.transcripts()
    names = list(table)
    for _ in range(50):
        name = str(names[int(rng.integers(len(names)))])
        audio = prompts.prompt_audio(name)
        lo, hi = _voiced_span(audio, prompts.PROMPT_RATE)
        if (hi - lo) / prompts.PROMPT_RATE <= max_s:
            return audio[lo:hi], table[name], {**prompts.SPEAKER, "prompt": name}, [0.0]
    return None


def _synthetic(
    rng: np.random.Generator, max_s: float, sample_rate: int
) -> tuple[np.ndarray, str, dict, list[float]]:
    from audiox_turbo.io.audio import resample

    language = str(rng.choice(list(LANGUAGES)))
    gender = str(rng.choice(["male", "female"]))
    variant = str(rng.choice(MALE_VARIANTS if gender == "male" else FEMALE_VARIANTS))
    wpm, pitch = int(rng.integers(130, 191)), int(rng.integers(30, 71))
    voice = f"{'en-us' if language == 'en' else language}+{variant}"
    for _ in range(20):
        text = english_sentence(rng) if language == "en" else str(rng.choice(PHRASES[language]))
        spoken = espeak.speak(text, voice, wpm, pitch)
        lo, hi = _voiced_span(spoken.audio, spoken.sample_rate)
        if (hi - lo) / spoken.sample_rate <= max_s:
            break
        wpm = min(wpm + 20, 260)
    import torch

    wave = torch.from_numpy(spoken.audio[lo:hi].astype(np.float32))[None]
    audio = resample(wave, spoken.sample_rate, sample_rate)[0].double().numpy()
    starts = [max(0.0, t - lo / spoken.sample_rate) for t in spoken.word_starts]
    speaker = {"gender": gender, "voice": voice, "language": LANGUAGES[language],
               "source": "espeak-ng", "words_per_minute": wpm}  # fmt: skip
    return audio, text, speaker, starts


def say(rng: np.random.Generator, duration: float, sample_rate: int) -> Speech:
    """One utterance (recorded or espeak-ng) placed at a random offset in a `duration` clip;
    espeak-ng when no recorded prompt is short enough."""
    max_s = duration - 0.3
    recorded = _recorded(rng, max_s) if rng.random() < RECORDED_SHARE else None
    if recorded is not None:
        audio, words, speaker, starts = recorded
        if sample_rate != prompts.PROMPT_RATE:
            import torch

            from audiox_turbo.io.audio import resample

            wave = torch.from_numpy(audio.astype(np.float32))[None]
            audio = resample(wave, prompts.PROMPT_RATE, sample_rate)[0].double().numpy()
    else:
        audio, words, speaker, starts = _synthetic(rng, max_s, sample_rate)
    audio = audio[: n_samples(max_s, sample_rate)]
    free = duration - len(audio) / sample_rate - 0.1
    offset = n_samples(float(rng.uniform(0.05, max(free, 0.06))), sample_rate)
    out = np.zeros(n_samples(duration, sample_rate))
    place(out, audio, offset)
    t0 = offset / sample_rate
    region = (round(t0, 4), round(t0 + len(audio) / sample_rate, 4))
    return Speech(normalize_peak(out), words, speaker, region, [round(t0 + s, 4) for s in starts])
