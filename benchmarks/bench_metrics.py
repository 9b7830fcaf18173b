"""Cost of the evaluation metrics and embedders per 100 clips on the current machine.

Metrics run on random embeddings of 100 clips (FD at 128-d and 2048-d, FAD∞ on 100 clips ×
10 VGGish frames, KAD, KL, IS). Embedders use randomly initialised published-size networks on
10 s stereo 44.1 kHz clips (resampling included); `--clips` of them are timed and the time is
scaled to 100 clips.
Usage: python benchmarks/bench_metrics.py [--clips 4] [--device cpu] [--skip-embedders]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from audiox_turbo.atomic import write_json_atomic

RESULTS = Path(__file__).parent / "results" / "metrics.json"


def _best_time(run: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_metrics(repeats: int) -> list[dict[str, Any]]:
    """Seconds per call of each metric on 100 clips of random embeddings."""
    from audiox_turbo.eval import metrics

    rng = np.random.default_rng(0)
    ref128, gen128 = rng.standard_normal((2, 100, 128))
    ref2048, gen2048 = rng.standard_normal((2, 100, 2048))
    frames_ref, frames_gen = rng.standard_normal((2, 1000, 128))
    logits_ref, logits_gen = rng.standard_normal((2, 100, 527))
    cases: dict[str, Callable[[], object]] = {
        "FD 100x128": lambda: metrics.frechet_distance(ref128, gen128),
        "FD 100x2048": lambda: metrics.frechet_distance(ref2048, gen2048),
        "FD 1000x128 (VGGish frames)": lambda: metrics.frechet_distance(frames_ref, frames_gen),
        "FAD-inf 1000x128, 25 points": lambda: metrics.fad_infinity(
            frames_ref, frames_gen, min_n=100
        ),
        "KAD 100x128": lambda: metrics.kad(ref128, gen128),
        "KAD 100x2048": lambda: metrics.kad(ref2048, gen2048),
        "KL softmax 100x527": lambda: metrics.kl_ref_to_gen(logits_ref, logits_gen),
        "IS 100x527": lambda: metrics.inception_score(logits_gen, inputs="logits"),
    }
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, run in cases.items():
            rows.append({"case": name, "seconds_per_100_clips": _best_time(run, repeats)})
    return rows


def bench_embedders(clips: int, device: str) -> list[dict[str, Any]]:
    """Seconds per 100 ten-second clips for each published embedder (random weights)."""
    import torch

    from audiox_turbo.eval.panns import Cnn14, PannsEmbedder
    from audiox_turbo.eval.passt import Passt, PasstEmbedder
    from audiox_turbo.eval.vggish import VGGishEmbedder, VGGishNetwork

    torch.manual_seed(0)
    wave = 0.1 * torch.randn(clips, 2, 441000)
    builders: dict[str, Callable[[], Any]] = {
        "vggish": lambda: VGGishEmbedder(VGGishNetwork(), device=device),
        "panns": lambda: PannsEmbedder(Cnn14(), device=device),
        "passt": lambda: PasstEmbedder(Passt(), device=device),
    }
    rows = []
    for name, build in builders.items():
        embedder = build()
        embedder.embed(wave[:1], 44100)
        start = time.perf_counter()
        out = embedder.embed(wave, 44100)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        rows.append(
            {
                "embedder": name,
                "output_shape": list(out.shape),
                "clips_timed": clips,
                "seconds_per_100_clips": elapsed * 100 / clips,
                "real_time_factor": elapsed / (clips * 10.0),
            }
        )
        del embedder
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="10 s clips timed per embedder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-embedders", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    metric_rows = bench_metrics(args.repeats)
    print(f"{'metric (100 clips)':<32} {'seconds':>10}")
    for row in metric_rows:
        print(f"{row['case']:<32} {row['seconds_per_100_clips']:>10.4f}")
    embedder_rows = [] if args.skip_embedders else bench_embedders(args.clips, args.device)
    if embedder_rows:
        print(f"\n{'embedder (100 x 10 s clips)':<32} {'seconds':>10} {'RTF':>8}")
        for row in embedder_rows:
            print(
                f"{row['embedder']:<32} {row['seconds_per_100_clips']:>10.1f} "
                f"{row['real_time_factor']:>8.4f}"
            )
    write_json_atomic(
        args.out,
        {
            "machine": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": args.device,
            "metrics": metric_rows,
            "embedders": embedder_rows,
        },
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
