"""Curation throughput: clips/s of stage 1 (collect) and stage 2 (annotate) on a local Ray
instance vs a single process over the same world clips, and peak memory (driver RSS and the
largest Ray worker RSS, sampled) as the input grows ×10.

Each (size, engine) runs in its own subprocess. Prints a table, writes
benchmarks/results/curate.json.

    python benchmarks/bench_curate.py --clips 8 --scale 10 --num-cpus 2
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from audiox_turbo.atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def _worker_peak(stop: threading.Event, peak: list[int]) -> None:
    """Sample the RSS of this process's children (Ray workers) every 0.5 s."""
    import psutil

    me = psutil.Process()
    while not stop.wait(0.5):
        for child in me.children(recursive=True):
            try:
                peak[0] = max(peak[0], child.memory_info().rss)
            except psutil.Error:
                continue


def run_one(clips: int, engine: str, num_cpus: int, work: Path) -> dict:
    """Generate `clips` world clips, then collect and annotate them with `engine`."""
    from audiox_turbo.curate.settings import AnnotateSettings, CutSettings, FilterThresholds
    from audiox_turbo.data.world.generate import generate_world

    generate_world(work / "world", clips, 1, "train", duration=5.0, video_fraction=0.0,
                   progress=False)  # fmt: skip
    sources, out = [str(work / "world" / "audio")], work / "curated"
    peak, stop = [0], threading.Event()
    threading.Thread(target=_worker_peak, args=(stop, peak), daemon=True).start()
    times = {}
    if engine == "ray":
        from audiox_turbo.curate.annotate_stage import run_annotate
        from audiox_turbo.curate.collect_stage import run_collect
        from audiox_turbo.curate.engine import ray_session

        with ray_session(num_cpus=num_cpus):
            start = time.perf_counter()
            run_collect(sources, out, CutSettings(), FilterThresholds(), 8, echo=lambda _: None)
            times["collect"] = time.perf_counter() - start
            start = time.perf_counter()
            summary = run_annotate(out, AnnotateSettings(), echo=lambda _: None)
            times["annotate"] = time.perf_counter() - start
        annotated = summary["clips"]
    else:
        annotated = _single_process(sources, out, times)
    stop.set()
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "clips": clips, "engine": engine, "annotated": annotated,
        "collect_clips_per_s": clips / times["collect"],
        "annotate_clips_per_s": annotated / times["annotate"],
        "driver_peak_rss_mb": driver / 2**20, "worker_peak_rss_mb": peak[0] / 2**20,
    }  # fmt: skip


def _single_process(sources: list[str], out: Path, times: dict) -> int:
    """The same steps without Ray: collect_file per file, then the stage-2 functions."""
    import pandas as pd

    from audiox_turbo.curate.collect import collect_file, list_sources
    from audiox_turbo.curate.collect_stage import MEDIA_SUFFIXES
    from audiox_turbo.curate.experts import ModelExperts, measure_facts
    from audiox_turbo.curate.settings import CutSettings
    from audiox_turbo.curate.verify import candidate_batch, select_batch
    from audiox_turbo.io.audio import load_audio

    start = time.perf_counter()
    rows = [r for i, f in enumerate(list_sources(sources, MEDIA_SUFFIXES))
            for r in collect_file(f, i, CutSettings(), str(out))]  # fmt: skip
    times["collect"] = time.perf_counter() - start
    start = time.perf_counter()
    experts = ModelExperts(None, [])
    classes = list(experts.experts[0].config.classes)
    done = 0
    for i in range(0, len(rows), 8):
        chunk = rows[i : i + 8]
        batch = pd.DataFrame({
            "clip_id": [r["clip_id"] for r in chunk], "source_caption": [""] * len(chunk),
            "wave": [load_audio(out / r["audio"], 16000, 1)[0][0].numpy() for r in chunk],
        })  # fmt: skip
        select_batch(candidate_batch(measure_facts(experts(batch)), 3), classes, 3, 0.1)
        done += len(chunk)
    times["annotate"] = time.perf_counter() - start
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--one", nargs=3, metavar=("CLIPS", "ENGINE", "WORK"), help="internal")
    args = parser.parse_args()
    if args.one:
        clips, engine, work = args.one
        print(json.dumps(run_one(int(clips), engine, args.num_cpus, Path(work))))
        return
    import tempfile

    results = []
    for clips in (args.clips, args.clips * args.scale):
        for engine in ("single", "ray"):
            with tempfile.TemporaryDirectory() as work:
                cmd = [sys.executable, __file__, "--num-cpus", str(args.num_cpus),
                       "--one", str(clips), engine, work]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"{clips} clips, {engine}: failed\n{done.stderr[-3000:]}")
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(results[-1], flush=True)
    print(f"\n{'clips':>6} {'engine':>7} {'collect/s':>10} {'annotate/s':>11} "
          f"{'driver MB':>10} {'worker MB':>10}")  # fmt: skip
    for r in results:
        print(f"{r['clips']:>6} {r['engine']:>7} {r['collect_clips_per_s']:>10.2f} "
              f"{r['annotate_clips_per_s']:>11.2f} {r['driver_peak_rss_mb']:>10.0f} "
              f"{r['worker_peak_rss_mb']:>10.0f}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "curate.json", {
        "machine": f"{platform.processor() or platform.machine()}, shared 2-core CPU",
        "num_cpus": args.num_cpus, "results": results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
