"""Conditioner speed: text + video + audio prompt + MAF for N seconds, batch 1, random weights.

Pretrained encoders that need local files (T5, CLIP) are replaced by the trainable stand-ins
(`bytes` text, `cnn` video) of the same feature width, marked `*`; `--standin` does this for
every preset (MiniLM too).
Usage: python benchmarks/bench_conditioning.py [--presets tiny demo base] [--seconds 10]
       [--repeats 3] [--device cpu|cuda] [--dtype float32|bfloat16] [--standin] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any

from audiox_turbo.atomic import write_json_atomic

RESULTS = Path(__file__).parent / "results" / "conditioning.json"
NEEDS_FILES = ("t5-base", "clip")


def _config(name: str, standin: bool) -> tuple[Any, bool]:
    from audiox_turbo.config import preset

    config = preset(name)
    c = config.conditioning
    replace = standin or c.text_encoder in NEEDS_FILES or c.video_encoder in NEEDS_FILES
    if replace:
        c = dataclasses.replace(c, text_encoder="bytes", video_encoder="cnn")
        config = dataclasses.replace(config, conditioning=c)
    return config, replace


def _measure(name: str, seconds: float, repeats: int, device: str, dtype: str, standin: bool):
    """Best-of-`repeats` forward times (after a warm-up) of one preset's Conditioner."""
    import torch

    from audiox_turbo.conditioning import Conditioner, audio_keep_mask
    from audiox_turbo.conditioning.inputs import ConditionInputs

    config, replaced = _config(name, standin)
    c = config.conditioning
    torch.manual_seed(0)
    dev = torch.device(device)
    conditioner = Conditioner(config).to(device=dev, dtype=getattr(torch, dtype)).eval()
    frames, nv = config.latent_frames(seconds), config.video_frames(seconds)
    video = torch.randint(0, 256, (1, nv, 3, c.video_size, c.video_size), dtype=torch.uint8)
    latents = torch.randn(1, config.codec.latent_dim, frames, device=dev)
    keep = audio_keep_mask("inpaint", frames, (seconds / 4, seconds / 2), seconds, 1).to(dev)
    text = ["a dog barks near a busy road"]
    calls = {
        "text": lambda: conditioner(ConditionInputs(1, text=text), frames, seconds),
        "all": lambda: conditioner(
            ConditionInputs(
                1, text=text, video=video.to(dev), audio_latents=latents, audio_keep=keep
            ),
            frames,
            seconds,
        ),
        "uncond": lambda: conditioner.unconditional(1, frames, seconds),
    }
    row: dict[str, Any] = {
        "preset": name + ("*" if replaced else ""),
        "params_m": sum(p.numel() for p in conditioner.parameters()) / 1e6,
        "latent_frames": frames,
        "video_frames": nv,
    }
    with torch.inference_mode():
        for key, call in calls.items():
            call()
            times = []
            for _ in range(repeats):
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                call()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            row[f"{key}_ms"] = 1000 * min(times)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "demo", "base"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--standin", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = [
        _measure(p, args.seconds, args.repeats, args.device, args.dtype, args.standin)
        for p in args.presets
    ]
    print(f"Conditioner, {args.seconds:g} s, batch 1, {args.device} {args.dtype}")
    print(f"{'preset':8} {'params M':>9} {'T':>5} {'Nv':>4} {'text ms':>9} {'all ms':>9}", end="")
    print(f" {'uncond ms':>10}")
    for r in rows:
        print(
            f"{r['preset']:8} {r['params_m']:9.2f} {r['latent_frames']:5d} {r['video_frames']:4d} "
            f"{r['text_ms']:9.1f} {r['all_ms']:9.1f} {r['uncond_ms']:10.1f}"
        )
    machine = {"platform": platform.platform(), "cpus": os.cpu_count()}
    write_json_atomic(
        args.out, {"machine": machine, "args": vars(args) | {"out": str(args.out)}, "rows": rows}
    )


if __name__ == "__main__":
    main()
