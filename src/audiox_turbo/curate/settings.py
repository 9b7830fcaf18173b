"""The curation settings: how stage 1 cuts clips, the filter thresholds (re-appliable to the
recorded measurements without decoding) and how stage 2 annotates."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from audiox_turbo.errors import AudioXError

SPLIT_MODES = ("fixed", "silence")


@dataclass(frozen=True)
class CutSettings:
    """How recordings become clips: windows of `clip_seconds` (the last one kept when at least
    `min_seconds`), or pieces between silences (`split="silence"`) cut to at most
    `clip_seconds`; kept clips are loudness-normalised to `target_lufs` (peak ≤ -1 dBFS)."""

    clip_seconds: float = 10.0
    min_seconds: float = 1.0
    split: str = "fixed"
    silence_gap: float = 0.3
    target_lufs: float = -23.0
    video_fps: int = 25
    video_size: int = 128

    def __post_init__(self) -> None:
        if self.split not in SPLIT_MODES:
            raise AudioXError(f"--split {self.split!r}: expected one of {', '.join(SPLIT_MODES)}")
        if not 0 < self.min_seconds <= self.clip_seconds:
            raise AudioXError(
                f"--min-seconds {self.min_seconds} / --clip-seconds {self.clip_seconds}: "
                "need 0 < min ≤ clip"
            )


@dataclass(frozen=True)
class FilterThresholds:
    """Every stage-1 drop rule's threshold (see `curate.decide` for the rules)."""

    min_seconds: float = 1.0
    silence_dbfs: float = -55.0
    clipped_fraction: float = 0.001
    dc_ratio: float = 0.5
    hum_ratio: float = 0.8
    cliff_db: float = 45.0
    cutoff_fraction: float = 0.7
    duplicate_ber: float = 0.2
    black_fraction: float = 0.95
    frozen_motion: float = 0.5
    av_offset_s: float = 0.2
    av_confidence: float = 0.1


def with_overrides(thresholds: FilterThresholds, pairs: list[str]) -> FilterThresholds:
    """`thresholds` with `NAME=VALUE` overrides; an unknown name or a bad value is one line."""
    known = {f.name for f in fields(FilterThresholds)}
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            raise AudioXError(
                f"--threshold {pair!r}: expected NAME=VALUE, NAME one of {', '.join(sorted(known))}"
            )
        try:
            changes[name] = float(value)
        except ValueError:
            raise AudioXError(f"--threshold {pair!r}: {value!r} is not a number") from None
    return replace(thresholds, **changes)


@dataclass(frozen=True)
class AnnotateSettings:
    """Stage 2: experts batch size, pool size and CPUs per model actor, captions per clip,
    verifier threshold."""

    batch_size: int = 8
    actors: int = 1
    actor_cpus: float = 1.0
    captions: int = 3
    min_score: float = 0.1
    llm_retries: int = 2
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.actors < 1 or self.captions < 1:
            raise AudioXError("--batch-size, --actors and --captions must be >= 1")
        if not self.actor_cpus > 0:
            raise AudioXError(f"--actor-cpus {self.actor_cpus}: must be > 0")
