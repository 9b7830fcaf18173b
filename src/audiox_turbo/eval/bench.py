"""`audiox-turbo bench`: NFE, latency and real-time factor of generation per step count.

Each (steps, cfg) pair is one row: cfg = 1 runs the few-step student sampler, cfg ≠ 1 the
teacher (Euler) with classifier-free guidance (two network evaluations per step).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from audiox_turbo.errors import AudioXError

if TYPE_CHECKING:
    from audiox_turbo.interface import Pipeline


@dataclass(frozen=True)
class TimingRow:
    """Median latency over `repeats` timed runs after one warm-up run."""

    sampler: str
    steps: int
    cfg: float
    nfe: int
    duration_s: float
    latency_s: float
    rtf: float
    device: str


def pair_settings(steps: list[int], cfgs: list[float]) -> list[tuple[int, float]]:
    """Pair step counts with guidance scales: equal lengths zip, one cfg applies to all steps."""
    if not steps:
        raise AudioXError("--steps: give at least one step count")
    if len(cfgs) == 1:
        cfgs = cfgs * len(steps)
    if len(cfgs) != len(steps):
        raise AudioXError(
            f"--cfg has {len(cfgs)} values for {len(steps)} step counts; give one or one per step"
        )
    for s in steps:
        if s < 1:
            raise AudioXError(f"--steps {s}: must be >= 1")
    return list(zip(steps, cfgs, strict=True))


def parse_numbers(values: list[str], kind: type) -> list[Any]:
    """`["4,100"]` or `["4", "100"]` → `[4, 100]` as `kind`; bad values raise an AudioXError."""
    items = [v for value in values for v in value.replace(",", " ").split()]
    try:
        return [kind(v) for v in items]
    except ValueError:
        raise AudioXError(f"not a list of numbers: {' '.join(values)!r}") from None


def _synchronise(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_generation(
    pipe: Pipeline,
    settings: list[tuple[int, float]],
    duration: float | None = None,
    repeats: int = 3,
    text: str = "a piano melody in C major at 100 BPM",
    seed: int = 0,
) -> list[TimingRow]:
    """Time one text-to-audio generation of `duration` seconds (default: 10 s, or the model's
    fixed length) per (steps, cfg) setting."""
    if repeats < 1:
        raise AudioXError(f"--repeats {repeats}: must be >= 1")
    duration = pipe.check_duration(duration)  # None: the model's default (official: fixed)
    rows = []
    for steps, cfg in settings:
        method = "student" if cfg == 1.0 else "euler"

        def run(steps: int = steps, cfg: float = cfg, method: str = method) -> Any:
            out = pipe(text=text, duration=duration, steps=steps, cfg=cfg, seed=seed, method=method)
            _synchronise(pipe.device)
            return out

        out = run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        latency = statistics.median(times)
        rows.append(
            TimingRow(
                sampler="student" if method == "student" else "teacher+cfg",
                steps=steps,
                cfg=cfg,
                nfe=out.nfe,
                duration_s=duration,
                latency_s=latency,
                rtf=latency / duration,
                device=str(pipe.device),
            )
        )
    return rows


def timing_table(rows: list[TimingRow]) -> str:
    """Markdown table of timing rows (RTF = latency / audio seconds; < 1: faster than real time)."""
    lines = [
        "| sampler | steps | cfg | NFE | audio s | latency s | RTF | device |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.sampler} | {r.steps} | {r.cfg:g} | {r.nfe} | {r.duration_s:g} | "
        f"{r.latency_s:.3f} | {r.rtf:.4f} | {r.device} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def timing_json(rows: list[TimingRow], model: str) -> dict[str, Any]:
    """JSON form of the timing rows with the model name and the torch version."""
    import platform

    import torch

    return {
        "benchmark": "generation latency",
        "model": model,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "rows": [asdict(r) for r in rows],
    }
