"""The log-mel codec's geometry: how many mel bands, which hop, whether the deconvolution
matters and what the decoder's temporal envelope restoration does, judged on a labelled world
split (`bench_codec_quality.measure`: judge class and key accuracy and onsets on reconstructions
vs originals, tones C3..C6 within 50 cents, spectral distances).

No training is involved: the codec has no network, and its band standardisation is invertible,
so every row is the geometry itself. Rows: --mels × --hops × --iterations (0 = the clamped
pseudo-inverse alone) × --envelope-iterations (0 = no envelope restoration) × --gap-frames (the
restoration's closing of short energy gaps, `codec/envelope.py`).
Usage: python benchmarks/bench_codec_mel.py --world WORLD [--clips 160] [--mels 32 48 64 80]
[--hops 256] [--iterations 30] [--envelope-iterations 30] [--gap-frames 9] [--judge DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_codec_quality import measure

RESULTS = Path(__file__).parent / "results" / "codec_mel.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True, help="world folder or manifest")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=160)
    parser.add_argument("--mels", type=int, nargs="+", default=[32, 48, 64, 80])
    parser.add_argument("--hops", type=int, nargs="+", default=[256])
    parser.add_argument("--iterations", type=int, nargs="+", default=[30])
    parser.add_argument("--envelope-iterations", type=int, nargs="+", default=[30])
    parser.add_argument("--gap-frames", type=int, nargs="+", default=[9])
    parser.add_argument("--judge", type=Path, default=None, help="judge dir (default: shipped)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from audiox_turbo.atomic import write_json_atomic
    from audiox_turbo.codec import LogMelCodec
    from audiox_turbo.config import preset
    from audiox_turbo.eval.judge import load_judge_embedder

    judge = load_judge_embedder(args.judge)
    base = preset("demo").codec
    rows = []
    header = (
        f"{'mels':>5}{'hop':>5}{'iter':>5}{'class':>7}{'orig':>6}{'key':>6}{'orig':>6}"
        f"{'tempo':>7}{'tones':>7}{'MR-STFT':>9}{'env':>5}{'gap':>5}{'onset':>7}{'err ms':>8}"
    )
    print(header)
    grid = itertools.product(
        args.mels, args.hops, args.iterations, args.envelope_iterations, args.gap_frames
    )
    for mels, hop, iterations, envelope, gap in grid:
        if envelope == 0 and gap != args.gap_frames[0]:
            continue  # without restoration the gap closing does nothing
        config = dataclasses.replace(base, n_mels=mels, hop_length=hop, latent_dim=2 * mels)
        codec = LogMelCodec(config).eval()
        codec.decoder.iterations = iterations
        codec.decoder.envelope_iterations = envelope
        codec.decoder.envelope_gap_frames = gap
        with tempfile.TemporaryDirectory() as work:
            row = measure(codec, args.world, args.split, args.clips, judge, Path(work))
        row |= {"n_mels": mels, "hop_length": hop, "iterations": iterations}
        row |= {"envelope_iterations": envelope, "gap_frames": gap}
        rows.append(row)
        o, r = row["original"], row["reconstructed"]
        print(
            f"{mels:>5}{hop:>5}{iterations:>5}{r['class_accuracy']:>7.3f}"
            f"{o['class_accuracy']:>6.3f}{r['key_accuracy']:>6.3f}{o['key_accuracy']:>6.3f}"
            f"{r['tempo_accuracy_4pct']:>7.3f}{row['tone_pitch_within_50_cents']:>7.2f}"
            f"{row['mr_stft_distance']:>9.3f}{envelope:>5}{gap:>5}"
            f"{r['onset_recall_50ms']:>7.3f}{1000 * r['onset_error_s']:>8.1f}"
        )
    write_json_atomic(
        args.out,
        {
            "benchmark": "codec_mel",
            "machine": {"platform": platform.platform(), "threads": args.threads},
            "world": str(args.world),
            "clips": args.clips,
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
