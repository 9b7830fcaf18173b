"""Stage 2's expert taggers. Each expert turns a batch of mono 16 kHz clips into facts (one
dict per clip); `ModelExperts` is the Ray actor that holds the models (the world judge, Silero
VAD, and plug-ins from local model folders), `measure_facts` the stateless measurements."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from audiox_turbo.errors import AudioXError

RATE = 16000
PLUGIN_KINDS = ("tagger", "asr")


class Expert(Protocol):
    """A plug-in expert: facts for a batch of mono clips `(samples,)` at 16 kHz."""

    name: str

    def __call__(self, clips: Sequence[np.ndarray]) -> list[dict[str, Any]]: ...


class JudgeExpert:
    """The world judge: category, class (with probabilities) and instruments (music)."""

    name = "judge"

    def __init__(self, checkpoint: str | None = None) -> None:
        from audiox_turbo.eval.judge import load_judge_embedder

        self.judge = load_judge_embedder(checkpoint)
        self.config = self.judge.net.config

    def __call__(self, clips: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        import torch

        with torch.no_grad():
            out = self.judge.all_outputs([torch.from_numpy(c) for c in clips], RATE)
        category = out.category.softmax(-1)
        klass = out.klass.softmax(-1)
        facts = []
        for i in range(len(clips)):
            c, k = int(category[i].argmax()), int(klass[i].argmax())
            name = self.config.categories[c]
            instruments = [
                self.config.instruments[j] for j in torch.nonzero(out.instruments[i] > 0).flatten()
            ]
            facts.append({
                "category": name, "category_prob": float(category[i, c]),
                "class": self.config.classes[k], "class_prob": float(klass[i, k]),
                "class_probs": klass[i].tolist(),
                "instruments": instruments if name == "music" else [],
            })  # fmt: skip
        return facts


class VadExpert:
    """Silero VAD (weights shipped in the `silero-vad` wheel): the share of the clip that is
    speech."""

    name = "vad"

    def __init__(self) -> None:
        from silero_vad import load_silero_vad

        self.model = load_silero_vad()

    def __call__(self, clips: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        import torch
        from silero_vad import get_speech_timestamps

        facts = []
        for clip in clips:
            spans = get_speech_timestamps(torch.from_numpy(clip), self.model, sampling_rate=RATE)
            speech = sum(s["end"] - s["start"] for s in spans)
            facts.append({"speech_fraction": speech / max(len(clip), 1)})
        return facts


class TransformersExpert:
    """A local Hugging Face folder run through a `transformers` pipeline: `tagger`
    (audio-classification: top labels) or `asr` (speech recognition: a transcript)."""

    def __init__(self, kind: str, folder: str) -> None:
        from transformers import pipeline

        task = {"tagger": "audio-classification", "asr": "automatic-speech-recognition"}[kind]
        self.name, self.kind = kind, kind
        try:
            self.pipe = pipeline(task, model=folder, device="cpu")
        except (OSError, ValueError) as e:
            raise AudioXError(f"--expert {kind}={folder}: cannot load ({e})") from None

    def __call__(self, clips: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        inputs = [{"raw": c, "sampling_rate": RATE} for c in clips]
        if self.kind == "tagger":
            out = self.pipe(inputs, top_k=3)
            return [{"tags": [(t["label"], float(t["score"])) for t in o]} for o in out]
        return [{"transcript": o["text"].strip()} for o in self.pipe(inputs)]


def parse_plugins(specs: Sequence[str]) -> list[tuple[str, str]]:
    """`KIND=DIR` pairs (KIND: tagger or asr; DIR a local folder); bad ones are one line."""
    from pathlib import Path

    out = []
    for spec in specs:
        kind, sep, folder = spec.partition("=")
        if not sep or kind not in PLUGIN_KINDS:
            raise AudioXError(f"--expert {spec!r}: expected KIND=DIR, KIND one of {PLUGIN_KINDS}")
        if not Path(folder).is_dir():
            raise AudioXError(f"--expert {spec!r}: {folder} is not a folder")
        out.append((kind, folder))
    return out


class ModelExperts:
    """Ray actor (one model load per actor): the judge, VAD and plug-ins over a batch."""

    def __init__(self, judge: str | None, plugins: Sequence[tuple[str, str]]) -> None:
        self.experts: list[Any] = [JudgeExpert(judge), VadExpert()]
        self.experts += [TransformersExpert(kind, folder) for kind, folder in plugins]

    def __call__(self, batch: Any) -> Any:
        clips = [np.asarray(w, np.float32) for w in batch["wave"]]
        facts: list[dict[str, Any]] = [{} for _ in clips]
        for expert in self.experts:
            for merged, new in zip(facts, expert(clips), strict=True):
                merged.update(new)
        batch = batch.copy()
        batch["facts"] = [json.dumps(f) for f in facts]
        return batch


def pitch_range(audio: np.ndarray, rate: int = RATE) -> tuple[float, float] | None:
    """(low, high) f0 in Hz (10th/90th percentile of voiced 40 ms frames, autocorrelation
    in 50–1000 Hz), None when fewer than 5 frames are voiced."""
    hop, size = rate // 50, rate // 25
    lo_lag, hi_lag = rate // 1000, rate // 50
    f0 = []
    for start in range(0, len(audio) - size, hop):
        frame = audio[start : start + size] - audio[start : start + size].mean()
        energy = float(np.dot(frame, frame))
        if energy < 1e-4:
            continue
        ac = np.correlate(frame, frame, "full")[size - 1 :]
        lag = lo_lag + int(np.argmax(ac[lo_lag:hi_lag]))
        if ac[lag] > 0.5 * energy:
            f0.append(rate / lag)
    if len(f0) < 5:
        return None
    return float(np.percentile(f0, 10)), float(np.percentile(f0, 90))


def measure_facts(batch: Any) -> Any:
    """Ray map_batches step: tempo and key (music), onsets (sfx), pitch range, per clip."""
    from audiox_turbo.data.world.measure import detect_onsets, estimate_key, estimate_tempo

    out = []
    for wave, facts in zip(batch["wave"], batch["facts"], strict=True):
        audio = np.asarray(wave, np.float32)
        facts = json.loads(facts)
        if facts.get("category") == "music":
            tempo = estimate_tempo(audio, RATE)
            facts["tempo"] = None if tempo is None else round(tempo, 1)
            if any(i not in ("drum kit", "drums") for i in facts.get("instruments", [])):
                facts["key"], facts["mode"] = estimate_key(audio, RATE)
        onsets = detect_onsets(audio, RATE)
        facts["onsets"] = [round(float(t), 3) for t in onsets]
        pitch = pitch_range(audio) if facts.get("category") in ("music", "speech") else None
        facts["pitch_hz"] = None if pitch is None else [round(p, 1) for p in pitch]
        out.append(json.dumps(facts))
    batch = batch.copy()
    batch["facts"] = out
    return batch
