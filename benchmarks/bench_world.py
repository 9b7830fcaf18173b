"""World generation throughput: clips/s for audio-only and video clips with 1 and 2 workers,
for the synthetic world and the real-source world (when its sources are present).

Run: python benchmarks/bench_world.py [--clips 16] ; writes benchmarks/results/world.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.data.world.generate import REAL_SOURCES, generate_world
from audiox_turbo.data.world.sources.catalog import missing

RESULTS = Path(__file__).parent / "results" / "world.json"


def measure(
    clips: int, video_fraction: float, workers: int, duration: float, sources: str
) -> float:
    """Clips per second for one fresh generation run."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        generate_world(
            out, clips, 0, "train", duration, 16000, video_fraction, workers, False, sources
        )
        return clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    rows = []
    families = ["synthetic"] + ([] if missing(REAL_SOURCES) else ["real"])
    for sources in families:
        for kind, fraction in (("audio-only", 0.0), ("video", 1.0)):
            for workers in (1, 2):
                rate = measure(args.clips, fraction, workers, args.duration, sources)
                rows.append(
                    {
                        "sources": sources,
                        "clips": kind,
                        "workers": workers,
                        "clips_per_s": round(rate, 2),
                    }
                )
    print(f"world generation: {args.clips} clips of {args.duration:g} s at 16 kHz")
    print(f"{'sources':<11}{'clips':<12}{'workers':>8}{'clips/s':>10}")
    for r in rows:
        print(f"{r['sources']:<11}{r['clips']:<12}{r['workers']:>8}{r['clips_per_s']:>10.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "world",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "clips": args.clips,
        "duration_s": args.duration,
        "sample_rate": 16000,
        "results": rows,
    }
    write_json_atomic(RESULTS, report)


if __name__ == "__main__":
    main()
