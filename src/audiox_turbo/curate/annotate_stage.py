"""Stage 2 as a Ray Data pipeline over the kept clips of a collected folder: decode (task) →
model experts (actor pool) → measurements (task) → [LM captions (actor)] → candidates (task)
→ [CLAP scores (actor)] → verified captions (task), one Parquet part per stage-1 block under
`annotations/`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audiox_turbo.curate.collect_stage import DECISIONS_FILE, PLAN_FILE
from audiox_turbo.curate.engine import (
    PartStore,
    Progress,
    configure_data_context,
    stream_into_parts,
)
from audiox_turbo.curate.settings import AnnotateSettings
from audiox_turbo.errors import AudioXError

LIGHT_CPUS = 0.1
"""CPU share reserved by the bookkeeping steps (candidates, selection), so that they never wait
for the CPUs the model actors hold."""
OUTPUT_COLUMNS = ("block", "clip_id", "facts", "captions", "caption_scores", "rejected_captions")


def kept_clips(out: Path) -> Any:
    """The stage-1 rows (with `block`) of every kept clip; an error when `out` is not
    collected."""
    import pandas as pd

    if not (out / PLAN_FILE).is_file() or not (out / DECISIONS_FILE).is_file():
        raise AudioXError(f"{out}: not a collected folder (run `curate collect` first)")
    columns = ["block", "clip_id", "audio", "video", "duration", "sample_rate", "channels",
               "source", "source_caption", "lufs", "gain_db"]  # fmt: skip
    table = PartStore(out / "clips" / "table").read(columns)
    decisions = pd.read_parquet(out / DECISIONS_FILE)
    return table.merge(decisions, on="clip_id")[lambda t: t["reason"] == ""]


def _load_waves(batch: Any, root: str, rate: int) -> Any:
    """Ray task: decode each clip's audio to mono at `rate`."""
    from audiox_turbo.io.audio import load_audio

    batch = batch.copy()
    batch["wave"] = [
        load_audio(Path(root) / a, rate, 1)[0][0].numpy().astype(np.float32) for a in batch["audio"]
    ]
    return batch


def _part_matches(store: PartStore, block: int, clip_ids: set[str]) -> bool:
    """Whether block `block` is annotated for exactly `clip_ids` (a re-filter can change the
    kept clips of a block; its part is then redone)."""
    import pyarrow.parquet as pq

    if not store.done(block):
        return False
    part = pq.read_table(store.path(block))
    have = set(part.column("clip_id").to_pylist()) if "clip_id" in part.column_names else set()
    return have == clip_ids


def _drop_wave(batch: Any) -> Any:
    return batch[list(OUTPUT_COLUMNS)]


def run_annotate(
    out_dir: str | os.PathLike[str],
    settings: AnnotateSettings,
    judge: str | None = None,
    plugins: Sequence[tuple[str, str]] = (),
    llm: str | None = None,
    clap: str | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Annotate the kept clips of `out_dir` (needs a Ray session); returns a summary."""
    import ray.data

    from audiox_turbo.curate.experts import ModelExperts, measure_facts
    from audiox_turbo.curate.verify import ClapScorer, candidate_batch, select_batch
    from audiox_turbo.eval.judge import load_judge

    out = Path(out_dir)
    clips = kept_clips(out)
    store = PartStore(out / "annotations")
    blocks = sorted(PartStore(out / "clips" / "table").read(["block"])["block"].unique().tolist())
    wanted = clips.groupby("block")["clip_id"].apply(set).to_dict()
    pending = [b for b in blocks if not _part_matches(store, b, wanted.get(b, set()))]
    todo = clips[clips["block"].isin(pending)]
    echo(f"annotate: {len(clips)} kept clips in {len(blocks)} blocks, {len(pending)} to run")
    classes = list(load_judge(judge).config.classes)
    if len(todo):
        configure_data_context()
        items = todo[["block", "clip_id", "audio", "source_caption"]].to_dict("records")
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 2000))
        ds = ds.map_batches(
            _load_waves, fn_kwargs={"root": str(out), "rate": settings.sample_rate},
            batch_size=settings.batch_size, batch_format="pandas",
        )  # fmt: skip
        ds = ds.map_batches(
            ModelExperts, fn_constructor_kwargs={"judge": judge, "plugins": list(plugins)},
            concurrency=settings.actors, num_cpus=settings.actor_cpus,
            batch_size=settings.batch_size, batch_format="pandas",
        )  # fmt: skip
        ds = ds.map_batches(measure_facts, batch_size=settings.batch_size, batch_format="pandas")
        if llm is not None:
            from audiox_turbo.curate.captions import LlmCaptioner

            count = settings.captions * (1 + settings.llm_retries)
            ds = ds.map_batches(
                LlmCaptioner, fn_constructor_kwargs={"folder": llm, "count": count},
                concurrency=1, num_cpus=settings.actor_cpus,
                batch_size=settings.batch_size, batch_format="pandas",
            )  # fmt: skip
        ds = ds.map_batches(
            candidate_batch, fn_kwargs={"wanted": settings.captions}, num_cpus=LIGHT_CPUS,
            batch_size=settings.batch_size, batch_format="pandas",
        )  # fmt: skip
        if clap is not None:
            ds = ds.map_batches(
                ClapScorer,
                fn_constructor_kwargs={"folder": clap, "sample_rate": settings.sample_rate},
                concurrency=1, num_cpus=settings.actor_cpus,
                batch_size=settings.batch_size, batch_format="pandas",
            )  # fmt: skip
        ds = ds.map_batches(
            select_batch,
            fn_kwargs={"classes": classes, "wanted": settings.captions,
                       "min_score": settings.min_score},
            num_cpus=LIGHT_CPUS, batch_size=settings.batch_size, batch_format="pandas",
        )  # fmt: skip
        ds = ds.map_batches(_drop_wave, batch_format="pandas", num_cpus=LIGHT_CPUS)
        stream_into_parts(ds, store, pending, 64, Progress("annotate", len(pending), echo))
    table = annotations(out)
    captioned = int((table["captions"].map(len) > 0).sum()) if len(table) else 0
    return {"clips": len(table), "captioned": captioned, "blocks_run": len(pending),
            "blocks_skipped": len(blocks) - len(pending)}  # fmt: skip


def annotations(out: Path) -> Any:
    """Every annotation row with its facts parsed (one DataFrame)."""
    table = PartStore(out / "annotations").read()
    table = table.dropna(subset=["clip_id"]) if "clip_id" in table else table
    if len(table):
        table = table.assign(facts=table["facts"].map(json.loads))
        for col in ("captions", "caption_scores", "rejected_captions"):
            table[col] = table[col].map(list)
    return table
