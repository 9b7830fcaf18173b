"""Stage 1 as a Ray Data pipeline: the plan (sources in blocks, stored in `collect.json`), the
per-file map over pending blocks, the Parquet parts, and the decisions and their report."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.curate.collect import ROW_DEFAULTS, collect_file, list_sources
from audiox_turbo.curate.decide import decide, reason_counts
from audiox_turbo.curate.engine import (
    PartStore,
    Progress,
    configure_data_context,
    stream_into_parts,
)
from audiox_turbo.curate.settings import CutSettings, FilterThresholds
from audiox_turbo.errors import AudioXError

MEDIA_SUFFIXES = frozenset({
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma",
    ".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v",
})  # fmt: skip
TABLE_COLUMNS = ("block", *ROW_DEFAULTS, "fingerprint")
"""Every column of a stage-1 part."""
PLAN_FILE = "collect.json"
DECISIONS_FILE = "decisions.parquet"
REPORT_FILE = "collect_report.json"


def _collect_batch(batch: Any, cut: CutSettings, out_dir: str) -> Any:
    """Ray map_batches step: source rows (block, order, url) → clip rows."""
    import pandas as pd

    rows = []
    for block, order, url in zip(batch["block"], batch["order"], batch["url"], strict=True):
        for row in collect_file(str(url), int(order), cut, out_dir):
            rows.append({"block": int(block), **row})
    return pd.DataFrame(rows)


def load_plan(out: Path, sources: list[str], cut: CutSettings, files_per_block: int) -> dict:
    """The stored plan of `out`, or a new one; a rerun with other settings is an error."""
    plan_file = out / PLAN_FILE
    if plan_file.is_file():
        plan = json.loads(plan_file.read_text())
        if plan["cut"] != asdict(cut) or plan["files_per_block"] != files_per_block:
            raise AudioXError(
                f"{plan_file}: {out} was collected with other cut settings; use a new --out "
                "(thresholds can be changed later with `curate filter`)"
            )
        return plan
    files = list_sources(sources, MEDIA_SUFFIXES)
    if not files:
        raise AudioXError(f"{', '.join(sources)}: no audio or video files found")
    plan = {"sources": sources, "files": files, "cut": asdict(cut),
            "files_per_block": files_per_block}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan_file, plan)
    return plan


def run_collect(
    sources: list[str],
    out_dir: str | os.PathLike[str],
    cut: CutSettings,
    thresholds: FilterThresholds,
    files_per_block: int = 16,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Collect `sources` into `out_dir` (needs a Ray session): measure every pending block,
    then decide. Returns the report (counts per reason, blocks run and skipped)."""
    import ray.data

    out = Path(out_dir)
    plan = load_plan(out, sources, cut, files_per_block)
    files = plan["files"]
    store = PartStore(out / "clips" / "table")
    blocks = list(range((len(files) + files_per_block - 1) // files_per_block))
    pending = [b for b in blocks if not store.done(b)]
    items = [
        {"block": b, "order": i, "url": files[i]}
        for b in pending
        for i in range(b * files_per_block, min((b + 1) * files_per_block, len(files)))
    ]
    echo(f"collect: {len(files)} files in {len(blocks)} blocks, {len(pending)} to run")
    if items:
        configure_data_context()
        dataset = ray.data.from_items(items, override_num_blocks=min(len(items), 2000))
        dataset = dataset.map_batches(
            _collect_batch,
            fn_kwargs={"cut": cut, "out_dir": str(out)},
            batch_size=1,
            batch_format="pandas",
            num_cpus=1,
        )
        stream_into_parts(dataset, store, pending, 64, Progress("collect", len(pending), echo))
    report = refilter(out, thresholds)
    report["blocks_run"], report["blocks_skipped"] = len(pending), len(blocks) - len(pending)
    write_json_atomic(out / REPORT_FILE, report)
    return report


def refilter(out_dir: str | os.PathLike[str], thresholds: FilterThresholds) -> dict[str, Any]:
    """Re-decide every clip of a collected folder from its recorded measurements; writes
    `decisions.parquet` and the report; returns the report."""
    out = Path(out_dir)
    if not (out / PLAN_FILE).is_file():
        raise AudioXError(f"{out}: not a collected folder (no {PLAN_FILE}; run `curate collect`)")
    store = PartStore(out / "clips" / "table")
    table = store.read([c for c in TABLE_COLUMNS if c != "fingerprint"])
    decisions = decide(table, thresholds, lambda ids: store.select(ids, "fingerprint"))
    from audiox_turbo.atomic import atomic_file

    with atomic_file(out / DECISIONS_FILE) as tmp:
        decisions.to_parquet(tmp, index=False)
    report = {
        "files": int(table["source"].nunique()),
        "clips": len(table),
        "counts": reason_counts(decisions),
        "kept_seconds": float(table["duration"][decisions["reason"] == ""].sum()),
        "thresholds": asdict(thresholds),
    }
    write_json_atomic(out / REPORT_FILE, report)
    return report
