"""Time Synchformer's video feature extractor at the released size (random weights): seconds per
10 s clip (250 frames at 224 px -> 30 segments -> (240, 768)) on a device and dtype, after a
one-segment warm-up. Prints a table and writes benchmarks/results/synchformer.json.

    python benchmarks/bench_synchformer.py                     # CPU, float32
    python benchmarks/bench_synchformer.py --device cuda --dtypes fp32 bf16 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

from audiox_turbo.atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(device: str, dtype: str, repeats: int, segment_batch: int) -> dict[str, Any]:
    """Seconds per clip (min and mean over `repeats`) of `extract` on one random 10 s clip."""
    import torch

    from audiox_turbo.official.config import SynchformerConfig
    from audiox_turbo.official.synchformer import SynchformerVideoEncoder

    config = SynchformerConfig()
    torch.manual_seed(0)
    encoder = SynchformerVideoEncoder(config).eval().to(device, getattr(torch, DTYPES[dtype]))
    size = config.image_size
    clip = torch.rand(1, config.frames, 3, size, size, device=device) * 2 - 1
    times = []
    with torch.inference_mode():
        encoder.extract(clip[:, : config.segment_frames], segment_batch)  # warm-up: 1 segment
        synchronize(device)
        for _ in range(repeats):
            tick = time.perf_counter()
            features = encoder.extract(clip, segment_batch)
            synchronize(device)
            times.append(time.perf_counter() - tick)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {
        "device": device,
        "dtype": dtype,
        "segment_batch": segment_batch,
        "clip_seconds": config.seconds,
        "frames": config.frames,
        "output_shape": list(features.shape),
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "seconds_per_clip_min": min(times),
        "seconds_per_clip_mean": sum(times) / len(times),
        "repeats": repeats,
        "peak_cuda_gib": peak,
    }


def machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "torch": torch.__version__,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["fp32"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--segment-batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS / "synchformer.json")
    args = parser.parse_args()
    rows = [measure(args.device, d, args.repeats, args.segment_batch) for d in args.dtypes]
    print(f"{'device':<8}{'dtype':<6}{'s/clip min':>12}{'s/clip mean':>13}{'output':>16}")
    for r in rows:
        print(
            f"{r['device']:<8}{r['dtype']:<6}{r['seconds_per_clip_min']:>12.3f}"
            f"{r['seconds_per_clip_mean']:>13.3f}{tuple(r['output_shape'])!s:>16}"
        )
    write_json_atomic(args.out, {"machine": machine(args.device), "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
