"""Stage 1's decisions from the recorded measurements: the first rule a clip breaks is its drop
reason; survivors are then de-duplicated (longer clips first, then source order). Pure
functions of the table and the thresholds, so re-filtering needs no decoding."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from audiox_turbo.curate.fingerprint import find_duplicates
from audiox_turbo.curate.settings import FilterThresholds

REASONS = (
    "undecodable", "no_audio_stream", "too_short", "silent", "clipped", "dc_offset", "hum",
    "band_limited", "black_video", "frozen_video", "av_offset", "exact_duplicate",
    "near_duplicate",
)  # fmt: skip
"""Every drop reason, in the order the rules are tried."""


def _bad(value: Any, limit: float) -> bool:
    return isinstance(value, float | int) and math.isfinite(value) and value > limit


def clip_reason(row: dict[str, Any], t: FilterThresholds) -> str:
    """The first rule `row` breaks ("" when it passes every per-clip rule)."""
    if row["error"] or (not row["has_audio"] and not row["has_video"]):
        return "undecodable"
    if not row["has_audio"]:
        return "no_audio_stream"
    if row["duration"] < t.min_seconds:
        return "too_short"
    if row["rms_dbfs"] < t.silence_dbfs:
        return "silent"
    if _bad(row["clipped_fraction"], t.clipped_fraction):
        return "clipped"
    if _bad(row["dc_ratio"], t.dc_ratio):
        return "dc_offset"
    if _bad(row["hum_ratio"], t.hum_ratio):
        return "hum"
    if (
        _bad(row["cliff_db"], t.cliff_db)
        and row["cutoff_hz"] < t.cutoff_fraction * row["nyquist_hz"]
    ):
        return "band_limited"
    if row["has_video"]:
        if _bad(row["black_fraction"], t.black_fraction):
            return "black_video"
        if row["motion_max"] < t.frozen_motion:
            return "frozen_video"
        if abs(row["av_offset"]) > t.av_offset_s and row["av_confidence"] >= t.av_confidence:
            return "av_offset"
    return ""


def decide(
    table: Any,
    thresholds: FilterThresholds,
    fingerprints: Callable[[set[str]], dict[str, bytes]],
) -> Any:
    """DataFrame (clip_id, reason, duplicate_of) for a stage-1 table (without fingerprints);
    `fingerprints(ids)` returns the fingerprint bytes of the surviving clips, so only those
    are ever held in memory."""
    import pandas as pd

    rows = table.to_dict("records")
    reasons = [clip_reason(r, thresholds) for r in rows]
    survivors = sorted(
        (i for i, r in enumerate(reasons) if not r),
        key=lambda i: (-rows[i]["duration"], rows[i]["order"], rows[i]["window"]),
    )
    prints = fingerprints({rows[i]["clip_id"] for i in survivors})
    dropped = find_duplicates(
        [rows[i]["clip_id"] for i in survivors],
        [rows[i]["pcm_sha1"] for i in survivors],
        [np.frombuffer(prints[rows[i]["clip_id"]], np.uint32) for i in survivors],
        thresholds.duplicate_ber,
    )
    duplicate_of = [""] * len(rows)
    for i in survivors:
        hit = dropped.get(rows[i]["clip_id"])
        if hit is not None:
            reasons[i], duplicate_of[i] = hit
    return pd.DataFrame(
        {"clip_id": [r["clip_id"] for r in rows], "reason": reasons, "duplicate_of": duplicate_of}
    )


def reason_counts(decisions: Any) -> dict[str, int]:
    """{"kept": n, reason: n, ...} in REASONS order, zero counts left out."""
    counts = decisions["reason"].value_counts().to_dict()
    out = {"kept": int(counts.get("", 0))}
    out.update({r: int(counts[r]) for r in REASONS if counts.get(r)})
    return out
