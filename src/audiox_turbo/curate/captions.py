"""Caption writers: the built-in composer (facts → short, detailed and instruction-like
captions, wording drawn per clip) and a local causal LM prompted with the facts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

MOODS = {"fast": ("upbeat", "lively", "driving"), "slow": ("slow", "calm", "gentle"),
         "mid": ("steady", "mid-tempo", "relaxed")}  # fmt: skip
VERBS = ("Generate", "Create", "Produce", "Make")


def short_name(label: str) -> str:
    """ "music:piano" → "piano"."""
    return label.split(":", 1)[-1]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe(facts: dict[str, Any], rng: np.random.Generator) -> tuple[str, str]:
    """(short, detailed) descriptions of a clip from its facts."""
    category, name = facts.get("category"), short_name(facts.get("class", "sound"))
    if category == "music":
        instruments = list(dict.fromkeys([name, *facts.get("instruments", [])]))
        tempo = facts.get("tempo")
        pace = (
            "mid" if tempo is None else "fast" if tempo >= 110 else "slow" if tempo < 80 else "mid"
        )
        short = f"{_and(instruments)} music"
        detail = f"{rng.choice(MOODS[pace])} {_and(instruments)}"
        if tempo is not None:
            detail += f" at {round(tempo)} BPM"
        if facts.get("key"):
            detail += f" in {facts['key']} {facts['mode']}"
        return short, detail
    if category == "speech":
        pitch = facts.get("pitch_hz")
        voice = "" if pitch is None else ("a low " if pitch[1] < 180 else "a high ")
        short = "speech"
        detail = f"{voice or 'a '}voice speaking" + (
            f': "{facts["transcript"]}"' if facts.get("transcript") else ""
        )
        return short, f"{detail} (speech)"
    events = len(facts.get("onsets", []))
    short = f"{name} sound"
    detail = f"{name} sounds" + (f", {events} distinct events" if events > 1 else "")
    return short, detail


def compose(facts: dict[str, Any], clip_id: str, count: int) -> list[str]:
    """`count` captions of varied wording and detail: short, detailed, instruction-like."""
    rng = np.random.default_rng(int(hashlib.sha1(clip_id.encode()).hexdigest()[:8], 16))
    short, detail = describe(facts, rng)
    tags = [t for t, _ in facts.get("tags", [])][:2]
    extra = f", with {_and(tags)}" if tags else ""
    variants = [
        short[0].upper() + short[1:] + ".",
        detail[0].upper() + detail[1:] + extra + ".",
        f"{rng.choice(VERBS)} {detail}{extra}.",
    ]
    return [variants[i % len(variants)] for i in range(count)]


def facts_prompt(facts: dict[str, Any]) -> str:
    """The LM prompt: the facts as JSON, then the instruction."""
    keep = {k: v for k, v in facts.items() if k not in ("class_probs", "onsets")}
    keep["event_count"] = len(facts.get("onsets", []))
    return (
        "Facts about an audio clip: " + json.dumps(keep, sort_keys=True) + "\n"
        "Write one caption describing the clip:\n"
    )


class LlmCaptioner:
    """Ray actor: a local Hugging Face causal LM folder writes `count` sampled captions per
    clip (loaded offline: no download)."""

    def __init__(self, folder: str, count: int, max_new_tokens: int = 40) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from audiox_turbo.errors import AudioXError

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as e:
            raise AudioXError(f"--llm {folder}: cannot load a causal LM ({e})") from None
        self.model.eval()
        self.count, self.max_new_tokens = count, max_new_tokens

    def write(self, facts: dict[str, Any], seed: int) -> list[str]:
        import torch

        torch.manual_seed(seed)
        ids = self.tokenizer(facts_prompt(facts), return_tensors="pt")
        pad = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id or 0
        with torch.no_grad():
            out = self.model.generate(
                **ids, do_sample=True, top_p=0.9, max_new_tokens=self.max_new_tokens,
                num_return_sequences=self.count, pad_token_id=pad,
            )  # fmt: skip
        texts = self.tokenizer.batch_decode(
            out[:, ids["input_ids"].shape[1] :], skip_special_tokens=True
        )
        return [t.strip().split("\n")[0].strip() for t in texts if t.strip()]

    def __call__(self, batch: Any) -> Any:
        batch = batch.copy()
        batch["llm_captions"] = [
            self.write(json.loads(f), int(hashlib.sha1(c.encode()).hexdigest()[:6], 16))
            for f, c in zip(batch["facts"], batch["clip_id"], strict=True)
        ]
        return batch
