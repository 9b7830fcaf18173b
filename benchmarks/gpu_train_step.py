"""One `base` teacher training step on a GPU: bf16 autocast, fused AdamW, achieved TFLOP/s.

Random weights and random latents (10 s, 44.1 kHz → 216 latent frames), unconditional
conditions (null text/video/audio). Optional `--compile blocks|full` also times the same step
with torch.compile after its warm-up: `blocks` compiles each MMDiT block (regional compilation:
identical blocks share one compiled graph, so compiling is quick), `full` the whole denoiser.
Writes JSON to $OUT/gpu_train_step.json when OUT is set.

    python benchmarks/gpu_train_step.py --batch 8 --compile blocks
    python benchmarks/gpu_train_step.py --preset tiny --device cpu --steps 2   # functional check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def run(args: argparse.Namespace, compiled: str | None) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from audiox_turbo.conditioning.conditioner import Conditioner
    from audiox_turbo.config import preset
    from audiox_turbo.flow.path import interpolate, sample_timesteps, velocity_target
    from audiox_turbo.model.denoiser import Denoiser

    device = torch.device(args.device)
    config = preset(args.preset)
    torch.manual_seed(0)
    with device:
        denoiser = Denoiser(config)
        conditioner = Conditioner(config)
    frames = config.latent_frames(args.duration)
    with torch.no_grad():
        cond = conditioner.unconditional(args.batch, frames, args.duration)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=1e-4, fused=device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    model = torch.compile(denoiser) if compiled == "full" else denoiser
    if compiled == "blocks":
        for block in denoiser.blocks:
            block.compile()
    x0 = torch.randn(args.batch, config.codec.latent_dim, frames, device=device)

    def step() -> float:
        eps = torch.randn_like(x0)
        t = sample_timesteps(args.batch, "logit_normal", device=device)
        with autocast:
            v = model(interpolate(x0, eps, t), t, cond)
        loss = F.mse_loss(v.float(), velocity_target(x0, eps))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warm_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        tick = time.perf_counter()
        step()
        times.append(time.perf_counter() - tick)
    with FlopCounterMode(display=False) as counter, autocast:
        eps = torch.randn_like(x0)
        t = sample_timesteps(args.batch, "logit_normal", device=device)
        denoiser(interpolate(x0, eps, t), t, cond).float().pow(2).mean().backward()
    opt.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {
        "preset": args.preset,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "compiled": compiled or "no",
        "batch": args.batch,
        "latent_frames": frames,
        "params": sum(p.numel() for p in denoiser.parameters()),
        "step_s_median": median,
        "warmup_s": warm_s,
        "samples_per_s": args.batch / median,
        "tflop_per_step": flops / 1e12,
        "achieved_tflop_s": flops / median / 1e12,
        "peak_mem_gib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false")
    parser.add_argument("--compile", choices=["blocks", "full"], default=None)
    args = parser.parse_args()
    rows = [run(args, compiled=None)]
    if args.compile:
        rows.append(run(args, compiled=args.compile))
    for r in rows:
        print(
            f"{r['preset']} compiled={r['compiled']} batch {r['batch']}: "
            f"{r['step_s_median'] * 1e3:.1f} ms/step, {r['samples_per_s']:.1f} samples/s, "
            f"{r['achieved_tflop_s']:.1f} TFLOP/s, peak {r['peak_mem_gib']:.1f} GiB "
            f"(warm-up {r['warmup_s']:.1f} s)"
        )
    out = Path(os.environ.get("OUT", Path(__file__).resolve().parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_train_step.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
