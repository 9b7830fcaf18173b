"""Oobleck codec speed on CPU: encode, decode and chunked decode of N seconds of audio.

Each (preset, operation) runs in its own spawned process so its peak RSS is its own.
Real-time factor (RTF) = processing seconds / audio seconds (below 1 = faster than real time).
Usage: python benchmarks/bench_codec.py [--presets tiny demo] [--seconds 10] [--repeats 3]
[--threads 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "codec.json"
OPERATIONS = ("encode", "decode", "decode_chunked")


def _rss_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS now, VmHWM peak) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _measure(
    preset_name: str, operation: str, seconds: float, repeats: int, threads: int
) -> dict[str, Any]:
    """Time one codec operation (best of `repeats`, after a warm-up) in this process."""
    import torch

    torch.set_num_threads(threads)

    from audiox_turbo.codec import OobleckVAE
    from audiox_turbo.config import preset

    cfg = preset(preset_name).codec
    torch.manual_seed(0)
    vae = OobleckVAE(cfg).eval()
    samples = round(seconds * cfg.sample_rate)
    wav = torch.randn(1, cfg.audio_channels, samples) * 0.1
    latents = torch.randn(1, cfg.latent_dim, cfg.latent_frames(samples))
    run = {
        "encode": lambda: vae.encode(wav),
        "decode": lambda: vae.decode(latents),
        "decode_chunked": lambda: vae.decode_chunked(latents, chunk_frames=128, overlap_frames=16),
    }[operation]
    rss_before = _rss_mib("VmRSS")
    times = []
    with torch.inference_mode():
        run()
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    best = min(times)
    return {
        "preset": preset_name,
        "operation": operation,
        "params_m": sum(p.numel() for p in vae.parameters()) / 1e6,
        "audio_seconds": seconds,
        "latent_frames": latents.shape[-1],
        "seconds": best,
        "rtf": best / seconds,
        "rss_before_mib": rss_before,
        "peak_rss_mib": _rss_mib("VmHWM"),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "demo"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    rows = []
    for name in args.presets:
        for operation in OPERATIONS:
            with ctx.Pool(1) as pool:
                rows.append(
                    pool.apply(
                        _measure, (name, operation, args.seconds, args.repeats, args.threads)
                    )
                )
    header = (
        f"{'preset':<7}{'operation':<16}{'params M':>9}{'time s':>9}{'RTF':>9}{'peak RSS MiB':>14}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['preset']:<7}{r['operation']:<16}{r['params_m']:>9.2f}{r['seconds']:>9.3f}"
            f"{r['rtf']:>9.4f}{r['peak_rss_mib']:>14.0f}"
        )
    from audiox_turbo.atomic import write_json_atomic

    write_json_atomic(
        args.out,
        {
            "benchmark": "codec",
            "machine": {"platform": platform.platform(), "cpus": mp.cpu_count()},
            "audio_seconds": args.seconds,
            "repeats": args.repeats,
            "threads": args.threads,
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
