"""Codec speed on CPU: encode, decode and chunked decode of N seconds of audio, and one training
step (forward + backward + AdamW) on a batch of crops, for Oobleck presets and the iSTFT codec.

Each (codec, operation) runs in its own spawned process so its peak RSS is its own.
Real-time factor (RTF) = processing seconds / audio seconds (below 1 = faster than real time).
The training step uses the same losses for every codec (multi-resolution STFT 2048/512/128 +
log-mel + KL), so the difference is the network; it reports wall and CPU seconds (the CPU time
stays meaningful on a shared machine).
Codecs are presets' (`demo` is the log-mel codec, which has no network and so no training
step; `tiny` and `base` Oobleck) or `istft`, the iSTFT codec the `demo` preset used before.
Usage: python benchmarks/bench_codec.py [--codecs tiny demo istft] [--seconds 10] [--repeats 3]
[--threads 1] [--batch 8] [--crop 1.0]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "codec.json"
ISTFT_CODEC = dict(
    sample_rate=16000,
    audio_channels=1,
    channels=192,
    latent_dim=32,
    kind="istft",
    n_fft=1024,
    hop_length=256,
    frames_per_latent=2,
    encoder_layers=2,
    decoder_layers=6,
)


def codec_config(name: str) -> Any:
    """A preset's codec config, or (`istft`) the iSTFT codec of the earlier `demo` preset."""
    from audiox_turbo.config import CodecConfig, preset

    return CodecConfig(**ISTFT_CODEC) if name == "istft" else preset(name).codec


OPERATIONS = ("encode", "decode", "decode_chunked", "train_step")


def _rss_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS now, VmHWM peak) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _train_step(vae: Any, batch: int, crop: float) -> Any:
    """A closure running one training step of `vae` on a fixed random batch of crops."""
    import torch

    from audiox_turbo.codec import kl_divergence
    from audiox_turbo.train.losses import mel_distance, multi_resolution_stft_loss

    cfg = vae.config
    samples = cfg.latent_frames(round(crop * cfg.sample_rate)) * cfg.downsampling
    wav = torch.randn(batch, cfg.audio_channels, samples) * 0.1
    optimizer = torch.optim.AdamW(vae.parameters(), 1e-4)

    def step() -> None:
        mean, std = vae.encode_posterior(wav)
        recon = vae.decode(mean + std * torch.randn_like(std))
        loss = multi_resolution_stft_loss(recon, wav, (2048, 512, 128), eps=1e-3)
        loss = loss + mel_distance(recon, wav, cfg.sample_rate) + 1e-4 * kl_divergence(mean, std)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def _measure(
    codec_name: str,
    operation: str,
    seconds: float,
    repeats: int,
    threads: int,
    batch: int = 8,
    crop: float = 1.0,
) -> dict[str, Any]:
    """Time one codec operation (best of `repeats`, after a warm-up) in this process."""
    import contextlib

    import torch

    torch.set_num_threads(threads)

    from audiox_turbo.codec import build_codec

    cfg = codec_config(codec_name)
    torch.manual_seed(0)
    vae = build_codec(cfg).eval()
    samples = round(seconds * cfg.sample_rate)
    wav = torch.randn(1, cfg.audio_channels, samples) * 0.1
    latents = torch.randn(1, cfg.latent_dim, cfg.latent_frames(samples))
    if operation == "train_step":
        run = _train_step(vae.train(), batch, crop)
        mode: Any = contextlib.nullcontext()
    else:
        run = {
            "encode": lambda: vae.encode(wav),
            "decode": lambda: vae.decode(latents),
            "decode_chunked": lambda: vae.decode_chunked(
                latents, chunk_frames=128, overlap_frames=16
            ),
        }[operation]
        mode = torch.inference_mode()
    rss_before = _rss_mib("VmRSS")
    times, cpu = [], []
    with mode:
        run()
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), _cpu_seconds()
            run()
            times.append(time.perf_counter() - start)
            cpu.append(_cpu_seconds() - start_cpu)
    best = min(times)
    return {
        "codec": codec_name,
        "kind": cfg.kind,
        "operation": operation,
        "params_m": sum(p.numel() for p in vae.parameters()) / 1e6,
        "latent_rate": cfg.latent_rate,
        "audio_seconds": batch * crop if operation == "train_step" else seconds,
        "latent_frames": latents.shape[-1],
        "seconds": best,
        "cpu_seconds": min(cpu),
        "rtf": best / seconds,
        "rss_before_mib": rss_before,
        "peak_rss_mib": _rss_mib("VmHWM"),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", nargs="+", default=["tiny", "demo", "istft"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=8, help="training-step batch")
    parser.add_argument("--crop", type=float, default=1.0, help="training-step crop seconds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    rows = []
    for name in args.codecs:
        trainable = codec_config(name).kind != "mel"
        for operation in OPERATIONS if trainable else OPERATIONS[:-1]:
            measure = (name, operation, args.seconds, args.repeats, args.threads)
            with ctx.Pool(1) as pool:
                rows.append(pool.apply(_measure, (*measure, args.batch, args.crop)))
    header = (
        f"{'codec':<7}{'operation':<16}{'params M':>9}{'time s':>9}{'CPU s':>9}{'RTF':>9}"
        f"{'peak RSS MiB':>14}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        rtf = f"{r['rtf']:>9.4f}" if r["operation"] != "train_step" else f"{'':>9}"
        print(
            f"{r['codec']:<7}{r['operation']:<16}{r['params_m']:>9.2f}{r['seconds']:>9.3f}"
            f"{r['cpu_seconds']:>9.3f}{rtf}{r['peak_rss_mib']:>14.0f}"
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
            "train_batch": args.batch,
            "train_crop_seconds": args.crop,
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
