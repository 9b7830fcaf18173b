"""The dataset card of an export: `README.md` with counts per stage and reason, the duration
histogram, the class and category mix, caption lengths and example rows, and PNG plots."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from audiox_turbo.atomic import atomic_file, write_json_atomic


def _plot(path: Path, kind: str, data: Any, title: str, xlabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if kind == "hist":
        ax.hist(data, bins=20)
    else:
        names, counts = zip(*data, strict=True) if data else ((), ())
        ax.barh(list(names), list(counts))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_card(
    shards: Path, records: list[Any], table: Any, report: dict[str, Any], index: Any
) -> dict[str, Any]:
    """Write `README.md`, `card.json` and `plots/*.png` into the shard folder; returns stats."""
    durations = [r.duration for r in records]
    classes = Counter(f"{r.labels['category']}:{r.labels['class']}" for r in records)
    categories = Counter(str(r.labels["category"]) for r in records)
    words = [len(c.split()) for r in records for c in r.captions]
    stats = {
        "collect": report["counts"],
        "annotated": len(table),
        "exported": len(records),
        "no_verified_caption": len(table) - len(records),
        "hours": sum(durations) / 3600,
        "categories": dict(categories),
        "classes": dict(classes.most_common()),
        "caption_words_mean": float(np.mean(words)) if words else 0.0,
        "shards": len(index.shards),
    }
    plots = shards / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    _plot(plots / "durations.png", "hist", durations, "Clip durations", "seconds")
    _plot(plots / "classes.png", "bar", classes.most_common(20), "Classes", "clips")
    _plot(plots / "caption_words.png", "hist", words, "Caption lengths", "words")
    examples = [(r.id, f"{r.duration:.1f}", r.labels["class"], r.captions[0]) for r in records[:5]]
    text = f"""# Curated dataset

Built by `audiox-turbo curate` (collect → annotate → export). {len(records)} clips,
{stats["hours"]:.3f} hours, {len(index.shards)} shards; train with `--data {shards}`.

## Stage 1: collection and filtering

{_table(sorted(report["counts"].items(), key=lambda kv: -kv[1]), ("decision", "clips"))}

## Stage 2: annotation

{len(table)} kept clips annotated; {len(records)} with at least one verified caption
({stats["no_verified_caption"]} without, left out). Mean caption length:
{stats["caption_words_mean"]:.1f} words.

## Mix

{_table(sorted(categories.items()), ("category", "clips"))}

{_table(classes.most_common(), ("class", "clips"))}

![durations](plots/durations.png) ![classes](plots/classes.png)
![caption lengths](plots/caption_words.png)

## Examples

{_table(examples, ("id", "seconds", "class", "caption"))}
"""
    with atomic_file(shards / "README.md") as tmp:
        tmp.write_text(text)
    write_json_atomic(shards / "card.json", stats)
    return stats
