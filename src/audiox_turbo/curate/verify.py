"""The caption verifier: checks what a caption claims against what the experts measured on the
audio. By default (judge labels) a caption scores the judge probability of the class it names
(0 when it names nothing checkable); with CLAP it scores the audio–text cosine similarity.
Either way a caption claiming a tempo more than 8 % off, a key that differs, or a class the
judge all but rules out (probability < 0.02) is rejected."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from audiox_turbo.curate.captions import compose, short_name

TEMPO_TOLERANCE = 0.08
RULED_OUT = 0.02
_BPM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:bpm|beats per minute)", re.IGNORECASE)
_KEY = re.compile(r"\b([A-G](?:#|b)?)\s+(major|minor)\b")


def mentioned(caption: str, names: Sequence[str]) -> list[int]:
    """Indices of the class names (their short form) that the caption names as words."""
    text = caption.lower()
    return [
        i
        for i, n in enumerate(names)
        if re.search(rf"\b{re.escape(short_name(n).lower())}\b", text)
    ]


def contradicts(caption: str, facts: dict[str, Any], classes: Sequence[str]) -> bool:
    """Whether the caption claims a tempo, key or class that the measurements rule out."""
    tempo = facts.get("tempo")
    for claim in _BPM.findall(caption):
        if tempo is None or abs(float(claim) - tempo) > TEMPO_TOLERANCE * tempo:
            return True
    for tonic, mode in _KEY.findall(caption):
        if facts.get("key") is not None and (tonic, mode) != (facts["key"], facts["mode"]):
            return True
    probs = facts.get("class_probs") or []
    hits = mentioned(caption, classes) if probs else []
    return bool(hits) and max(probs[i] for i in hits) < RULED_OUT


def judge_score(caption: str, facts: dict[str, Any], classes: Sequence[str]) -> float:
    """The judge probability of the best class the caption names; half the category
    probability when it names only the category; 0 when it names neither or contradicts."""
    if contradicts(caption, facts, classes):
        return 0.0
    probs = facts.get("class_probs") or []
    hits = mentioned(caption, classes) if probs else []
    if hits:
        return float(max(probs[i] for i in hits))
    if facts.get("category") and re.search(rf"\b{facts['category']}\b", caption.lower()):
        return 0.5 * float(facts.get("category_prob", 0.0))
    return 0.0


def candidate_batch(batch: Any, wanted: int) -> Any:
    """Ray task: every clip's candidate captions — LM captions first, then the source caption,
    then the composer's — without repeats."""
    llm = batch["llm_captions"] if "llm_captions" in batch else [[]] * len(batch)
    out = []
    for facts, clip, source, lm in zip(
        batch["facts"], batch["clip_id"], batch["source_caption"], llm, strict=True
    ):
        composed = compose(json.loads(facts), clip, wanted)
        out.append(list(dict.fromkeys([*lm, *([source] if source else []), *composed])))
    batch = batch.copy()
    batch["candidates"] = out
    return batch


class ClapScorer:
    """Ray actor: audio–text cosine similarity of every candidate, from a local CLAP folder
    (`transformers` ClapModel + its processor, offline)."""

    def __init__(self, folder: str, sample_rate: int) -> None:
        from transformers import AutoProcessor, ClapModel

        from audiox_turbo.errors import AudioXError

        try:
            self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
            self.model = ClapModel.from_pretrained(folder, local_files_only=True).eval()
        except (OSError, ValueError) as e:
            raise AudioXError(f"--clap {folder}: cannot load a CLAP model ({e})") from None
        self.rate = sample_rate

    def __call__(self, batch: Any) -> Any:
        import torch

        from audiox_turbo.io.audio import resample

        clap_rate = self.processor.feature_extractor.sampling_rate
        waves = [
            resample(torch.from_numpy(np.asarray(w, np.float32))[None], self.rate, clap_rate)[0]
            for w in batch["wave"]
        ]
        scores = []
        with torch.no_grad():
            audio = self.processor(
                audio=[w.numpy() for w in waves], sampling_rate=clap_rate, return_tensors="pt"
            )
            a = _unit(self.model.get_audio_features(**audio))
            for i, texts in enumerate(batch["candidates"]):
                tokens = self.processor(text=list(texts), return_tensors="pt", padding=True)
                t = _unit(self.model.get_text_features(**tokens))
                scores.append((t @ a[i]).tolist())
        batch = batch.copy()
        batch["clap_scores"] = scores
        return batch


def _unit(x: Any) -> Any:
    x = x if hasattr(x, "norm") else x.pooler_output
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def select_batch(batch: Any, classes: Sequence[str], wanted: int, min_score: float) -> Any:
    """Ray task: drop the candidates that contradict the facts, score the others (CLAP when
    `clap_scores` exist, else the judge), keep up to `wanted` in order that reach `min_score`;
    record the scores and the rejected captions."""
    clap = batch["clap_scores"] if "clap_scores" in batch else [None] * len(batch)
    kept, scores, rejected = [], [], []
    for facts, candidates, sims in zip(batch["facts"], batch["candidates"], clap, strict=True):
        facts = json.loads(facts)
        good, good_scores, bad = [], [], []
        for i, caption in enumerate(candidates):
            if contradicts(caption, facts, classes):
                bad.append(caption)
                continue
            s = judge_score(caption, facts, classes) if sims is None else float(sims[i])
            if s < min_score:
                bad.append(caption)
            elif len(good) < wanted:
                good.append(caption)
                good_scores.append(round(s, 4))
        kept.append(good)
        scores.append(good_scores)
        rejected.append(bad)
    batch = batch.copy()
    batch["captions"], batch["caption_scores"], batch["rejected_captions"] = kept, scores, rejected
    return batch
