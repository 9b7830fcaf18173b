"""The caption verifier: checks what a caption claims against what the experts measured on the
audio — the class it names (judge probability), its tempo (within 8 %) and key — and scores it
in [0, 1]; a caption that names nothing checkable scores 0."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from audiox_turbo.curate.captions import short_name

TEMPO_TOLERANCE = 0.08
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


def score_caption(caption: str, facts: dict[str, Any], classes: Sequence[str]) -> float:
    """The caption's agreement with the facts (see module doc)."""
    probs = facts.get("class_probs") or []
    hits = mentioned(caption, classes) if probs else []
    if hits:
        score = max(probs[i] for i in hits)
    elif facts.get("category") and re.search(rf"\b{facts['category']}\b", caption.lower()):
        score = 0.5 * float(facts.get("category_prob", 0.0))
    else:
        return 0.0
    tempo = facts.get("tempo")
    for claim in _BPM.findall(caption):
        if tempo is None or abs(float(claim) - tempo) > TEMPO_TOLERANCE * tempo:
            return 0.0
    for tonic, mode in _KEY.findall(caption):
        if facts.get("key") is not None and (tonic, mode) != (facts["key"], facts["mode"]):
            return 0.0
    return float(score)


def verify_batch(batch: Any, classes: Sequence[str], wanted: int, min_score: float) -> Any:
    """Ray map_batches step: score every candidate (LM captions first, then the source
    caption, then the composer's), keep up to `wanted` that reach `min_score`."""
    from audiox_turbo.curate.captions import compose

    kept, scores, rejected = [], [], []
    llm = batch["llm_captions"] if "llm_captions" in batch else [[]] * len(batch)
    for facts, clip, source, lm in zip(
        batch["facts"], batch["clip_id"], batch["source_caption"], llm, strict=True
    ):
        facts = json.loads(facts)
        candidates = [*lm, *([source] if source else []), *compose(facts, clip, wanted)]
        good, good_scores, bad = [], [], []
        for caption in dict.fromkeys(candidates):
            s = score_caption(caption, facts, classes)
            if s >= min_score and len(good) < wanted:
                good.append(caption)
                good_scores.append(round(s, 4))
            elif s < min_score:
                bad.append(caption)
        kept.append(good)
        scores.append(good_scores)
        rejected.append(bad)
    batch = batch.copy()
    batch["captions"], batch["caption_scores"], batch["rejected_captions"] = kept, scores, rejected
    return batch
