"""Export: the annotated clips as a manifest (`manifest.jsonl` in the curated folder), WebDataset
shards the trainers read (`--data OUT`) and a dataset card (`OUT/README.md` + PNG plots)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from audiox_turbo.curate.annotate_stage import annotations, kept_clips
from audiox_turbo.curate.captions import short_name
from audiox_turbo.curate.collect_stage import REPORT_FILE
from audiox_turbo.errors import AudioXError

MANIFEST = "manifest.jsonl"


def clip_labels(facts: dict[str, Any]) -> dict[str, Any]:
    """World-style labels of a curated clip from its facts (the rest under `details`)."""
    main = {
        "category": facts.get("category"),
        "class": short_name(facts["class"]) if facts.get("class") else None,
        "instruments": facts.get("instruments", []),
        "tempo": facts.get("tempo"),
        "key": facts.get("key"),
        "mode": facts.get("mode"),
        "event_times": facts.get("onsets", []),
    }
    skip = {"class_probs", "onsets", *main}
    return {**main, "details": {k: v for k, v in facts.items() if k not in skip}}


def build_records(out: Path) -> tuple[list[Any], Any]:
    """ClipRecords of every clip with at least one verified caption, and the joined table."""
    from audiox_turbo.data.manifest import ClipRecord

    clips = kept_clips(out)
    notes = annotations(out)
    if not len(notes):
        raise AudioXError(f"{out}: no annotations (run `curate annotate {out}` first)")
    table = clips.merge(notes, on=["clip_id", "block"])
    records = []
    for row in table.itertuples():
        if not row.captions:
            continue
        labels = clip_labels(row.facts)
        labels["details"]["caption_scores"] = list(row.caption_scores)
        records.append(
            ClipRecord(
                id=row.clip_id,
                audio=row.audio,
                video=row.video or None,
                captions=list(row.captions),
                duration=float(row.duration),
                sample_rate=int(row.sample_rate),
                channels=int(row.channels),
                labels=labels,
                source=str(row.source),
            )
        )
    return records, table


def run_export(
    out_dir: str | os.PathLike[str], shards: str | os.PathLike[str], shard_size: int
) -> dict[str, Any]:
    """Write the manifest, the shards (+ index.json) and the card; returns the card's stats."""
    from audiox_turbo.curate.card import write_card
    from audiox_turbo.data.manifest import write_manifest
    from audiox_turbo.data.shards import write_shards

    out = Path(out_dir)
    records, table = build_records(out)
    if not records:
        raise AudioXError(f"{out}: no clip has a verified caption; nothing to export")
    write_manifest(out / MANIFEST, records)
    index = write_shards(out / MANIFEST, shards, shard_size, "flac")
    report = json.loads((out / REPORT_FILE).read_text())
    return write_card(Path(shards), records, table, report, index)
