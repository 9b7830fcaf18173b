"""Generation speed: time per NFE, student (4 NFE) vs teacher (100 steps + CFG = 200 NFE).

Each preset runs in its own subprocess so peak memory is per preset. Prints a table and writes
benchmarks/results/generate.json. Teacher end-to-end time is measured when `--teacher-steps`
fits the time budget, otherwise extrapolated from the measured per-NFE time (marked).

    python benchmarks/bench_generate.py                       # tiny, demo, base on CPU
    python benchmarks/bench_generate.py --presets default     # the shipped model (or a dir)
    python benchmarks/bench_generate.py --presets base --device cuda --dtype bfloat16 --cuda-graphs

With `--cuda-graphs` each preset is measured eagerly and then, in the same process, with the
denoiser replayed through CUDA graphs (keys prefixed `graphed_`); the graphed student's output
is compared with the eager one (`graphed_max_abs_diff`).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from audiox_turbo.atomic import write_json_atomic

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
    graphs: bool = False,
) -> dict:
    """Benchmark one preset (a preset name, a model directory, or `default`: the shipped
    model) in this process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from audiox_turbo.loader import default_model, load

    torch.manual_seed(0)
    pipe = load(default_model() if preset == "default" else preset, device=device, dtype=dtype)
    if compile_mode:
        pipe.denoiser.forward = torch.compile(pipe.denoiser.forward, mode=compile_mode)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    frames = pipe.config.latent_frames(duration)
    # presets whose text encoder needs a local checkpoint (T5) run with the null text prompt
    prompt = PROMPT if pipe.config.conditioning.text_encoder in ("bytes", "minilm") else None
    repeat = 3 if preset != "base" or device != "cpu" else 1
    row: dict = {}
    with torch.no_grad():
        cond = pipe.encode_prompts(text=prompt, duration=duration)
        cond = cond.to(pipe.device, pipe.dtype)
        x = torch.randn(1, pipe.config.codec.latent_dim, frames, device=pipe.device)
        t = torch.full((1,), 0.5, device=pipe.device)
        with FlopCounterMode(display=False) as counter:
            pipe.denoiser(x, t, cond)
        flops = counter.get_total_flops()
        row["conditioning_s"] = _timed(
            lambda: pipe.encode_prompts(text=prompt, duration=duration), device, repeat
        )
        latents = torch.randn(1, pipe.config.codec.latent_dim, frames, device=pipe.device)
        pipe.decode(latents)  # cuDNN autotuning may transiently take most of the free memory
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()  # report the working set, not the autotuning
        row["decode_s"] = _timed(lambda: pipe.decode(latents), device, repeat)
        for prefix in ("", "graphed_") if graphs else ("",):
            if prefix:
                pipe.enable_cuda_graphs()
            forward = pipe.denoiser if pipe.graphed is None else pipe.graphed
            forward(x, t, cond)  # warm-up (captures the graph)
            nfe_time = _timed(lambda f=forward: f(x, t, cond), device, repeat)

            def student() -> torch.Tensor:
                return pipe(
                    text=prompt, duration=duration, steps=4, cfg=1.0, method="student", seed=0
                ).waveforms

            row[prefix + "student_wav"] = student()
            student_time = _timed(student, device, repeat)
            teacher_nfe = 2 * teacher_steps
            estimate = student_time + (teacher_nfe - 4) * nfe_time
            if estimate <= budget:

                def teacher() -> None:
                    pipe(
                        text=prompt,
                        duration=duration,
                        steps=teacher_steps,
                        cfg=4.5,
                        method="euler",
                        seed=0,
                    )

                if prefix:
                    teacher()  # captures the batch-2 CFG graph
                teacher_time, teacher_measured = _timed(teacher, device), True
            else:
                teacher_time, teacher_measured = estimate, False
            row.update(
                {
                    prefix + "nfe_s": nfe_time,
                    prefix + "achieved_tflop_s": flops / nfe_time / 1e12,
                    prefix + "student_4nfe_s": student_time,
                    prefix + "teacher_s": teacher_time,
                    prefix + "teacher_measured": teacher_measured,
                    prefix + "speedup": teacher_time / student_time,
                    prefix + "rtf_student": student_time / duration,
                }
            )
        if graphs:
            diff = (row.pop("graphed_student_wav") - row["student_wav"]).abs().max()
            row["graphed_max_abs_diff"] = float(diff)
        row.pop("student_wav")
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
        "denoiser_tflops_per_nfe": flops / 1e12,
        "teacher_nfe": 2 * teacher_steps,
        **row,
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
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="also measure with CUDA-graph replay"
    )
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
            args.cuda_graphs,
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
            *(["--cuda-graphs"] if args.cuda_graphs else []),
            *(["--threads", str(args.threads)] if args.threads else []),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    header = (
        f"{'preset':<6} {'device':<6} {'dtype':<9} {'replay':<7} {'s/NFE':>9} {'TFLOP/s':>8} "
        f"{'cond':>7} {'decode':>7} {'student 4 NFE':>14} {'teacher 200 NFE':>16} {'ratio':>7} "
        f"{'peak MiB':>9}"
    )
    print(f"{args.duration:g} s of audio; machine: {platform.processor() or platform.machine()}")
    print(header)
    extrapolated = False
    for r in rows:
        for prefix in ("", "graphed_"):
            if prefix + "nfe_s" not in r:
                continue
            mark = "" if r[prefix + "teacher_measured"] else "*"
            extrapolated |= bool(mark)
            print(
                f"{r['preset']:<6} {r['device']:<6} {r['dtype']:<9} "
                f"{'graph' if prefix else 'eager':<7} {r[prefix + 'nfe_s']:>9.4f} "
                f"{r[prefix + 'achieved_tflop_s']:>8.3f} {r['conditioning_s']:>6.3f}s "
                f"{r['decode_s']:>6.3f}s {r[prefix + 'student_4nfe_s']:>13.3f}s "
                f"{r[prefix + 'teacher_s']:>14.2f}s{mark} {r[prefix + 'speedup']:>6.1f}x "
                f"{r['peak_mem_mib']:>9.0f}"
            )
        if "graphed_max_abs_diff" in r:
            print(f"  graphed vs eager student output: max |diff| {r['graphed_max_abs_diff']:.2e}")
    if extrapolated:
        print("* teacher time extrapolated from the measured per-NFE time")
    write_json_atomic(args.out, {"machine": platform.platform(), "rows": rows})


if __name__ == "__main__":
    main()
