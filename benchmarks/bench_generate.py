"""Generation speed: time per NFE, student (4 NFE) vs teacher (100 steps + CFG = 200 NFE).

Each preset runs in its own subprocess so peak memory is per preset. Prints a table and writes
benchmarks/results/generate.json. Teacher end-to-end time is measured when `--teacher-steps`
fits the time budget, otherwise extrapolated from the measured per-NFE time (marked).

    python benchmarks/bench_generate.py                       # tiny, demo, base on CPU
    python benchmarks/bench_generate.py --presets base --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "a dog barking in the rain"
RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def measure(
    preset: str,
    device: str,
    dtype: str,
    duration: float,
    teacher_steps: int,
    budget: float,
    compile_mode: str | None = None,
) -> dict:
    """Benchmark one preset in this process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from audiox_turbo.pipeline import AudioXTurbo

    torch.manual_seed(0)
    pipe = AudioXTurbo.from_preset(preset, device=device, dtype=dtype)
    if compile_mode:
        pipe.denoiser.forward = torch.compile(pipe.denoiser.forward, mode=compile_mode)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    frames = pipe.config.latent_frames(duration)
    # presets whose text encoder needs a local checkpoint (T5) run with the null text prompt
    prompt = PROMPT if pipe.config.conditioning.text_encoder in ("bytes", "minilm") else None
    with torch.no_grad():
        cond, _, _ = pipe.encode_prompts(text=prompt, duration=duration)
        cond = cond.to(pipe.device, pipe.dtype)
        x = torch.randn(1, pipe.config.codec.latent_dim, frames, device=pipe.device)
        t = torch.full((1,), 0.5, device=pipe.device)
        pipe.denoiser(x, t, cond)  # warm-up
        repeat = 3 if preset != "base" or device != "cpu" else 1
        nfe_time = _timed(lambda: pipe.denoiser(x, t, cond), device, repeat)
        with FlopCounterMode(display=False) as counter:
            pipe.denoiser(x, t, cond)
        flops = counter.get_total_flops()

        def student() -> None:
            pipe(text=prompt, duration=duration, steps=4, cfg=1.0, method="student", seed=0)

        student()
        student_time = _timed(student, device, repeat)
        teacher_nfe = 2 * teacher_steps
        estimate = student_time + (teacher_nfe - 4) * nfe_time
        if estimate <= budget:
            teacher_time = _timed(
                lambda: pipe(
                    text=prompt,
                    duration=duration,
                    steps=teacher_steps,
                    cfg=4.5,
                    method="euler",
                    seed=0,
                ),
                device,
            )
            teacher_measured = True
        else:
            teacher_time, teacher_measured = estimate, False
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "preset": preset,
        "device": device,
        "dtype": dtype,
        "duration_s": duration,
        "latent_frames": frames,
        "params": pipe.parameter_counts(),
        "nfe_s": nfe_time,
        "denoiser_tflops_per_nfe": flops / 1e12,
        "achieved_tflop_s": flops / nfe_time / 1e12,
        "student_4nfe_s": student_time,
        "teacher_nfe": teacher_nfe,
        "teacher_s": teacher_time,
        "teacher_measured": teacher_measured,
        "speedup": teacher_time / student_time,
        "rtf_student": student_time / duration,
        "peak_mem_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "demo", "base"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--teacher-steps", type=int, default=100)
    parser.add_argument("--budget", type=float, default=120.0, help="max seconds for a teacher run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--compile", default=None, help="torch.compile mode for the denoiser")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS / "generate.json"))
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        row = measure(
            args.presets[0],
            args.device,
            args.dtype,
            args.duration,
            args.teacher_steps,
            args.budget,
            args.compile,
        )
        print(json.dumps(row))
        return
    rows = []
    for name in args.presets:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--presets",
            name,
            "--device",
            args.device,
            "--dtype",
            args.dtype,
            "--duration",
            str(args.duration),
            "--teacher-steps",
            str(args.teacher_steps),
            "--budget",
            str(args.budget),
            *(["--compile", args.compile] if args.compile else []),
            *(["--threads", str(args.threads)] if args.threads else []),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    header = (
        f"{'preset':<6} {'device':<6} {'dtype':<9} {'s/NFE':>9} {'TFLOP/s':>8} "
        f"{'student 4 NFE':>14} {'teacher 200 NFE':>16} {'ratio':>7} {'peak MiB':>9}"
    )
    print(f"{args.duration:g} s of audio; machine: {platform.processor() or platform.machine()}")
    print(header)
    for r in rows:
        mark = "" if r["teacher_measured"] else "*"
        print(
            f"{r['preset']:<6} {r['device']:<6} {r['dtype']:<9} {r['nfe_s']:>9.4f} "
            f"{r['achieved_tflop_s']:>8.3f} {r['student_4nfe_s']:>13.3f}s "
            f"{r['teacher_s']:>14.2f}s{mark} {r['speedup']:>6.1f}x {r['peak_mem_mib']:>9.0f}"
        )
    if any(not r["teacher_measured"] for r in rows):
        print("* teacher time extrapolated from the measured per-NFE time")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
