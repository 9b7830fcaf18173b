"""The Ray Data engine of every stage: a local Ray instance (or a cluster via `address`), and
the resumable part store — one Parquet part per input block, written atomically, so a rerun
streams only the blocks whose part is missing.

A stage builds a Ray Data pipeline over the rows of the pending blocks (each row carries its
`block`), with order preserved, and `stream_into_parts` writes each block's rows as soon as the
next block's rows arrive: memory holds the blocks in flight, not the dataset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audiox_turbo.atomic import atomic_file, remove_stale_temps
from audiox_turbo.errors import AudioXError

STARTUP_TRIES = 3


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise AudioXError("curation needs Ray Data: pip install 'audiox-turbo[curate]'") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration: the running instance if any, else `address` (a cluster), else a
    local instance with `num_cpus` (default: all), no dashboard, logs in a temp folder."""
    ray = _require_ray()
    if ray.is_initialized():
        yield
        return
    temp = None
    if address is None:
        temp = tempfile.mkdtemp(prefix="ray-")
    _init_with_retries(
        ray,
        address=address,
        num_cpus=num_cpus if address is None else None,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        **({"_temp_dir": temp} if temp else {}),
    )
    try:
        yield
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _init_with_retries(ray: Any, **kwargs: Any) -> None:
    """ray.init, tried STARTUP_TRIES times: on a loaded machine the raylet can miss Ray's fixed
    30 s registration window."""
    for attempt in range(STARTUP_TRIES):
        try:
            ray.init(**kwargs)
            return
        except Exception as e:  # Ray raises a bare Exception for this
            ray.shutdown()
            if "timed out during startup" not in str(e) or attempt == STARTUP_TRIES - 1:
                raise


def configure_data_context() -> None:
    """Ordered streaming (so blocks finish one after another) and quiet Ray progress bars."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


class PartStore:
    """`folder/part-NNNNN.parquet`, one per finished block; written atomically."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.folder)

    def path(self, block: int) -> Path:
        return self.folder / f"part-{block:05d}.parquet"

    def done(self, block: int) -> bool:
        return self.path(block).is_file()

    def write(self, block: int, table: Any) -> None:
        """Write a pyarrow Table (or pandas DataFrame) as block `block`'s part."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not isinstance(table, pa.Table):
            table = pa.Table.from_pandas(table, preserve_index=False)
        table = table.replace_schema_metadata(None)  # plain Arrow types, any pandas reads it
        with atomic_file(self.path(block)) as tmp:
            pq.write_table(table, tmp)

    def read(self, columns: list[str] | None = None) -> Any:
        """Every part as one pandas DataFrame (in block order)."""
        import pandas as pd
        import pyarrow.parquet as pq

        parts = sorted(self.folder.glob("part-*.parquet"))
        if not parts:
            return pd.DataFrame(columns=columns or [])
        return pd.concat(
            [pq.read_table(p, columns=columns).to_pandas() for p in parts], ignore_index=True
        )

    def select(self, ids: set[str], column: str) -> dict[str, Any]:
        """{clip_id: value of `column`} for the rows of `ids`, read part by part."""
        import pyarrow.parquet as pq

        out: dict[str, Any] = {}
        for part in sorted(self.folder.glob("part-*.parquet")):
            table = pq.read_table(part, columns=["clip_id", column]).to_pydict()
            out.update(
                (k, v) for k, v in zip(table["clip_id"], table[column], strict=True) if k in ids
            )
        return out


def stream_into_parts(
    dataset: Any,
    store: PartStore,
    blocks: list[int],
    batch_size: int,
    on_block: Callable[[int, int], None] | None = None,
) -> int:
    """Run `dataset` (rows with a `block` column, in block order) and write each block's rows as
    its part; blocks of `blocks` that yield no row get an empty part. Returns rows written."""
    import pandas as pd

    pending: list[Any] = []
    current: int | None = None
    written = 0
    seen: set[int] = set()

    def flush() -> None:
        nonlocal written
        if current is None:
            return
        frame = pd.concat(pending, ignore_index=True)
        store.write(current, frame)
        written += len(frame)
        seen.add(current)
        if on_block is not None:
            on_block(current, len(frame))

    for batch in dataset.iter_batches(batch_size=batch_size, batch_format="pandas"):
        for block, rows in batch.groupby("block", sort=False):
            if block != current:
                flush()
                pending, current = [], int(block)
            pending.append(rows)
    flush()
    for block in blocks:
        if block not in seen and not store.done(block):
            store.write(block, pd.DataFrame({"block": pd.Series([], dtype="int64")}))
    return written


class Progress:
    """One line per finished block: blocks done, rows, rows per second."""

    def __init__(self, label: str, total_blocks: int, echo: Callable[[str], None]) -> None:
        self.label, self.total, self.echo = label, total_blocks, echo
        self.start = time.monotonic()
        self.blocks = 0
        self.rows = 0

    def __call__(self, block: int, rows: int) -> None:
        self.blocks += 1
        self.rows += rows
        rate = self.rows / max(time.monotonic() - self.start, 1e-9)
        self.echo(
            f"{self.label}: block {block} done ({self.blocks}/{self.total} this run, "
            f"{self.rows} rows, {rate:.2f} rows/s)"
        )
