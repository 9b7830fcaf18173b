"""World judge: embedding cost per 100 clips, accuracy per head on the test splits of both
source families (real and synthetic), and the world benchmark table (on the real test split)
for the `tiny` preset (random weights) and the shipped model if present.

    python benchmarks/bench_judge.py [--real DIR] [--synthetic DIR] [--clips-per-task 4]

A split not given is generated (400 clips of 5 s, seed 0) under
benchmarks/results/world_test_<sources>. Writes benchmarks/results/judge.json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.data.manifest import manifest_root, read_manifest
from audiox_turbo.data.world.generate import generate_world
from audiox_turbo.eval.judge import judge_accuracy, load_judge_embedder, resolve_manifest
from audiox_turbo.eval.world_benchmark import markdown_table, run_world_benchmark, select_prompts
from audiox_turbo.loader import load
from audiox_turbo.model_dir import shipped_model_dir

RESULTS = Path(__file__).parent / "results"


def embedding_cost(judge, seconds: float = 5.0, clips: int = 100) -> float:
    """Seconds to embed and classify `clips` clips of `seconds` at 16 kHz (batches of 16)."""
    wave = torch.randn(clips, 1, round(seconds * 16000)).clamp(-1, 1) * 0.3
    judge.all_outputs(wave[:16], 16000)
    start = time.perf_counter()
    judge.all_outputs(wave, 16000)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", type=Path, default=None, help="real-source test split")
    parser.add_argument("--synthetic", type=Path, default=None, help="synthetic test split")
    parser.add_argument("--clips-per-task", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifests = {}
    for sources in ("real", "synthetic"):
        given = getattr(args, sources)
        manifests[sources] = (
            generate_world(RESULTS / f"world_test_{sources}", 400, 0, "test", sources=sources)
            if given is None
            else resolve_manifest(given, "test")
        )
    manifest = manifests["real"]
    judge = load_judge_embedder(None)
    cost = embedding_cost(judge)
    print(f"judge: {cost:.2f} s per 100 clips of 5 s ({args.threads} thread(s))")
    accuracy = {sources: judge_accuracy(judge, m) for sources, m in manifests.items()}
    print("| head | real | synthetic |\n|---|---|---|")
    for name in accuracy["real"]:
        cells = [accuracy[s].get(name) for s in manifests]
        print(f"| {name} | " + " | ".join(f"{v:.4g}" for v in cells) + " |")
    prompts = select_prompts(read_manifest(manifest), manifest_root(manifest), args.clips_per_task)
    tables = {}
    models = ["tiny"] + ([str(shipped_model_dir())] if shipped_model_dir() else [])
    for model in models:
        pipe = load(model, device="cpu")
        name = pipe.config.name + ("" if pipe.config.trained else " (random weights)")
        start = time.perf_counter()
        report = run_world_benchmark(
            pipe, prompts, RESULTS / f"world_benchmark_{pipe.config.name}", judge=judge
        )
        report["seconds"] = round(time.perf_counter() - start, 1)
        tables[name] = report
        print(f"\n{name}: steps/cfg = model defaults, {args.clips_per_task} clips per task")
        print(markdown_table(report["rows"]), end="")
    write_json_atomic(
        RESULTS / "judge.json",
        {
            "benchmark": "judge",
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), "
            f"torch {torch.__version__}",
            "test_manifests": {s: str(m) for s, m in manifests.items()},
            "embed_seconds_per_100_clips_of_5s": round(cost, 3),
            "accuracy": accuracy,
            "world_benchmark": tables,
        },
    )


if __name__ == "__main__":
    main()
