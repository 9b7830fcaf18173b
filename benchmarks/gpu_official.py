"""GPU latency of the released-size `official` AudioX-Turbo model (random weights).

For each dtype: seconds per NFE (denoiser forward, batch 1) and end-to-end 4-step `generate`
of 10.96 s stereo (T5 + audio-prompt VAE encode + MAF, 4 NFE, VAE decode in float32), timed
with CUDA events after warm-up, plus the split into conditioning / sampling / decoding and
peak GPU memory. TF32 is off (the official generation code disables it). With `--cuda-graphs`
the same model is measured again with the MMDiT replayed through CUDA graphs, then also with
TF32 convolutions, which with --dtype bf16 touch only the float32 VAEs (keys prefixed
`graphed_`, `graphed_tf32_`; each with its max |diff| from the eager waveform).
cuDNN benchmark mode is on: with heuristics alone, the first VAE convolutions of a fresh
process were seen to take a plan with a ~130 GiB workspace and run 5x slower (H200).
Writes JSON to $OUT/gpu_official.json when OUT is set, else benchmarks/results/.
`--tiny` runs the official_tiny preset on CPU (a functional check of this script).

    PYTHONPATH=src python benchmarks/gpu_official.py --dtype bf16 fp32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from audiox_turbo.atomic import write_json_atomic
from bench_official import build_random_model

VARIANT_LABELS = {"": "eager", "graphed_": "graph", "graphed_tf32_": "graph+tf32"}


def timed(fn: Callable[[], Any], device: str, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of fn after `warmup` calls (CUDA events on GPU, perf_counter on CPU)."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            tick = time.perf_counter()
            fn()
            times.append(time.perf_counter() - tick)
    return times


def measure(
    preset: str, device: str, dtype: str, warmup: int, repeats: int, graphs: bool
) -> dict[str, Any]:
    """All numbers for one dtype."""
    import torch

    from audiox_turbo.flow.sampling import SamplerSettings
    from audiox_turbo.official.sampling import sample_official

    student = SamplerSettings("student", 4)

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = build_random_model(preset, device, dtype)
    result: dict[str, Any] = {"preset": preset, "device": device, "dtype": dtype}
    if device == "cuda":
        result["weights_gib"] = torch.cuda.max_memory_allocated() / 2**30
    c = model.config
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(1, c.codec.latent_dim, c.latent_frames, device=device, generator=g)
    x = x.to(model.dtype)
    t = torch.full((1,), 0.75, device=device, dtype=model.dtype)
    prompt = ["a dog barking in the rain"]
    variants = [("", False, False)]
    if graphs:  # CUDA-graph replay, then also TF32 convolutions in the two float32 VAEs
        variants += [("graphed_", True, False), ("graphed_tf32_", True, True)]
    outputs = {}
    with torch.no_grad():
        cond = model.condition(prompt, None, None, None, g)
        latents = sample_official(model.denoiser, x, cond, student, g)
        for prefix, graphed, tf32 in variants:
            torch.backends.cudnn.allow_tf32 = tf32
            model.enable_cuda_graphs(graphed)
            forward = model.denoiser if model.graphed is None else model.graphed
            outputs[prefix] = model.generate(prompt[0], duration=c.duration, seed=0)[0]
            if device == "cuda":  # the working set, not cuDNN's transient autotuning workspace
                torch.cuda.reset_peak_memory_stats()
            parts = {
                "nfe_s": lambda f=forward: f(x, t, cond),
                "conditioning_s": lambda: model.condition(prompt, None, None, None, g),
                "sampling_4step_s": lambda f=forward: sample_official(f, x, cond, student, g),
                "decode_s": lambda: model.codec.decode(latents.float()),
                "end_to_end_s": lambda: model.generate(prompt[0], duration=c.duration, seed=0),
            }
            for name, fn in parts.items():
                times = timed(fn, device, warmup, repeats)
                result[prefix + name] = statistics.median(times)
                result[prefix + name[:-2] + "_min_s"] = min(times)
            if device == "cuda":
                result[prefix + "peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        for prefix, _, _ in variants[1:]:
            diff = (outputs[prefix] - outputs[""]).abs().max()
            result[prefix + "max_abs_diff"] = float(diff)
        torch.backends.cudnn.allow_tf32 = False
    result["parameters"] = sum(p.numel() for p in model.parameters())
    if device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
    return result


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="official_tiny on CPU")
    parser.add_argument("--dtype", nargs="+", choices=["bf16", "fp32"], default=["bf16"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="also measure with CUDA-graph replay"
    )
    parser.add_argument(
        "--no-cudnn-benchmark",
        action="store_true",
        help="use cuDNN heuristics (a fresh process may then pick a huge-workspace VAE conv plan)",
    )
    args = parser.parse_args()
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device; use --tiny for a CPU check")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    preset = "official_tiny" if args.tiny else "official"
    rows = [
        measure(preset, device, d, args.warmup, args.repeats, args.cuda_graphs) for d in args.dtype
    ]
    print(
        f"{'dtype':<6}{'variant':<12}{'NFE ms':>9}{'cond ms':>9}{'4-step ms':>11}"
        f"{'decode ms':>11}{'e2e ms':>9}"
    )
    for r in rows:
        for prefix, label in VARIANT_LABELS.items():
            if prefix + "nfe_s" not in r:
                continue
            diff = r.get(prefix + "max_abs_diff")
            print(
                f"{r['dtype']:<6}{label:<12}{r[prefix + 'nfe_s'] * 1e3:>9.1f}"
                f"{r[prefix + 'conditioning_s'] * 1e3:>9.1f}"
                f"{r[prefix + 'sampling_4step_s'] * 1e3:>11.1f}"
                f"{r[prefix + 'decode_s'] * 1e3:>11.1f}{r[prefix + 'end_to_end_s'] * 1e3:>9.1f}"
                + (f"   max |diff| vs eager {diff:.2e}" if diff is not None else "")
            )
    out_dir = (
        Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).parent / "results"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("gpu_official_tiny.json" if args.tiny else "gpu_official.json")
    write_json_atomic(path, {"torch": torch.__version__, "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
