"""Loader throughput: samples/s from raw files vs tar shards vs cached latents, 0/1/2 workers.

Makes a synthetic set of 5 s 16 kHz mono clips in a temp dir, then times one epoch of each
loader (after one warm-up epoch) with batch size 8, one torch thread per process.
Writes benchmarks/results/data.json.

    python benchmarks/bench_data.py [--clips 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.data.dataset import ClipDataset, collate
from audiox_turbo.data.latents import LatentShardDataset, encode_to_shards
from audiox_turbo.data.manifest import ClipRecord, write_manifest
from audiox_turbo.data.shards import ShardDataset, write_shards

SR = 16000
SECONDS = 5.0
DOWNSAMPLING = 512
LATENT_DIM = 32
BATCH = 8


def make_set(root: Path, clips: int) -> Path:
    """`clips` noisy chirps of SECONDS at SR in root/audio + manifest.jsonl."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    t = np.arange(round(SECONDS * SR)) / SR
    records = []
    for i in range(clips):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t * (1 + t)) + 0.01 * rng.standard_normal(
            t.size
        )
        sf.write(root / "audio" / f"c{i}.wav", wave.astype(np.float32), SR, subtype="PCM_16")
        records.append(
            ClipRecord(
                id=f"c{i}",
                audio=f"audio/c{i}.wav",
                captions=[f"a chirp number {i}", f"rising tone {i}"],
                duration=SECONDS,
                sample_rate=SR,
                channels=1,
            )
        )
    write_manifest(root / "manifest.jsonl", records)
    return root / "manifest.jsonl"


def frame_encoder(wave: torch.Tensor) -> torch.Tensor:
    """Stand-in codec: (B, 1, S) -> (B, LATENT_DIM, S / DOWNSAMPLING) by a fixed projection."""
    frames = wave.unfold(-1, DOWNSAMPLING, DOWNSAMPLING)[:, 0]
    projection = torch.randn(DOWNSAMPLING, LATENT_DIM, generator=torch.Generator().manual_seed(0))
    return (frames @ projection).transpose(1, 2)


def samples_per_second(loader: DataLoader) -> float:
    """Samples per second over one epoch, after a warm-up epoch."""
    for _ in loader:
        pass
    start, count = time.perf_counter(), 0
    for batch in loader:
        count += len(batch["id"])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/data.json")
    args = parser.parse_args()
    # as in DataLoader workers: intra-op threads only contend on a 2-core machine
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_set(root, args.clips)
        write_shards(manifest, root / "shards", 8 * 2**20)
        encode_to_shards(
            manifest, root / "latents", frame_encoder,
            sample_rate=SR, channels=1, downsampling=DOWNSAMPLING,
        )  # fmt: skip
        crop_frames = round(SECONDS * SR / DOWNSAMPLING)
        for workers in (0, 1, 2):
            raw = ClipDataset(manifest, SR, 1, SECONDS, seed=0)
            sources = {
                "raw files": DataLoader(
                    raw,
                    BATCH,
                    shuffle=True,
                    num_workers=workers,
                    collate_fn=collate,
                ),
                "shards": DataLoader(
                    ShardDataset(root / "shards", SR, 1, SECONDS),
                    BATCH,
                    num_workers=workers,
                    collate_fn=collate,
                ),
                "cached latents": DataLoader(
                    LatentShardDataset(root / "latents", crop_frames),
                    BATCH,
                    num_workers=workers,
                    collate_fn=collate,
                ),
            }
            for name, loader in sources.items():
                rows.append(
                    {
                        "source": name,
                        "workers": workers,
                        "samples_per_s": samples_per_second(loader),
                    }
                )
    print(f"{'source':<16}{'workers':>8}{'samples/s':>12}")
    for r in rows:
        print(f"{r['source']:<16}{r['workers']:>8}{r['samples_per_s']:>12.1f}")
    write_json_atomic(
        args.out,
        {
            "benchmark": "data loaders",
            "clips": args.clips,
            "clip_seconds": SECONDS,
            "sample_rate": SR,
            "batch_size": BATCH,
            "machine": f"{platform.machine()} x{os.cpu_count()}, torch {torch.__version__}",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
