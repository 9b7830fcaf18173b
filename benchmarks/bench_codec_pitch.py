"""How fast a fresh codec learns pitch: the `demo` codec geometry trained end to end on single
harmonic tones only, with the tone test of `bench_codec_quality.py` every `--every` steps.

A testbed for the learned iSTFT codec's lost pitch (the geometry of the earlier `demo` preset,
`bench_codec.ISTFT_CODEC`) (`docs/default_model.md`): the loss is a distance between
the decoder's predicted log-magnitudes and the tone's STFT log-magnitudes (no sampling, no KL),
so only the encoder floor, the distance and the learning rate differ between runs. With
`--supervised` no decoder is trained: the encoder's posterior means are fitted to a sinusoidal
code of log-pitch (can the encoder extract pitch at all?).
Usage: python benchmarks/bench_codec_pitch.py [--steps 1600] [--distance l1|l2] [--floor 1e-5]
[--lr 3e-4] [--supervised] [--seed 0] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_codec import ISTFT_CODEC
from bench_codec_quality import SEMITONES_C3_C6, harmonic_tone, semitone_hz, tone_errors_cents

RESULTS = Path(__file__).parent / "results" / "codec_pitch.json"
RATE = 16000
LOWEST = 130.81  # C3


def tone_batch(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, 1, RATE) one-second tones, f0 log-uniform C3..C6, four harmonics with random
    amplitudes and phases; and their f0 (count,)."""
    f0 = LOWEST * 2 ** (3 * torch.rand(count, generator=generator))
    t = torch.arange(RATE) / RATE
    amplitudes = torch.rand(count, 4, generator=generator) ** 2
    phases = 2 * math.pi * torch.rand(count, 4, generator=generator)
    wave = sum(
        amplitudes[:, h - 1, None]
        * torch.sin(2 * math.pi * f0[:, None] * h * t + phases[:, h - 1, None])
        for h in (1, 2, 3, 4)
    )
    return (0.3 * wave / amplitudes.sum(1, keepdim=True))[:, None], f0


def pitch_code(f0: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) Hz -> (N, dim) sines and cosines of log2(f0 / C3) at geometric frequencies."""
    octaves = torch.log2(f0 / LOWEST)[:, None]
    scales = math.pi * 2 ** (torch.arange(dim // 2) / 4)[None]
    return torch.cat([torch.sin(octaves * scales), torch.cos(octaves * scales)], 1)


def score(codec: torch.nn.Module, supervised: bool) -> tuple[float, float]:
    """Share of the 37 semitone tones C3..C6 within 50 cents and the median error in cents:
    of the reconstruction's pitch, or (supervised) of the nearest code on a 10-cent grid."""
    if supervised:
        f0 = semitone_hz(SEMITONES_C3_C6)
        tones = torch.stack([harmonic_tone(float(f), RATE, 1.5) for f in f0])[:, None]
        with torch.no_grad():
            mean = codec.encode_posterior(tones)[0][..., 5:-5].mean(-1)
        grid = LOWEST * 2 ** torch.arange(0, 3.0001, 1 / 120)
        nearest = torch.cdist(mean, pitch_code(grid, mean.shape[1])).argmin(1)
        cents = (1200 * torch.log2(grid[nearest].double() / f0)).abs()
    else:
        cents = tone_errors_cents(codec, RATE)
    return float((cents <= 50).float().mean()), float(cents.median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--distance", choices=("l1", "l2"), default="l1")
    parser.add_argument("--floor", type=float, default=1e-5, help="codec encoder_floor")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--supervised", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from audiox_turbo.atomic import write_json_atomic
    from audiox_turbo.codec import build_codec
    from audiox_turbo.codec.spectral import stft_same
    from audiox_turbo.config import CodecConfig

    config = CodecConfig(**ISTFT_CODEC, encoder_floor=args.floor)
    codec = build_codec(config)
    optimiser = torch.optim.Adam(codec.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    window = torch.hann_window(config.n_fft)
    rows, begin = [], time.perf_counter()
    print(f"{'step':>6}{'within 50 cents':>17}{'median cents':>14}{'loss':>9}{'s':>7}")
    for step in range(1, args.steps + 1):
        wav, f0 = tone_batch(8, generator)
        mean, _ = codec.encode_posterior(wav)
        if args.supervised:
            loss = (mean - pitch_code(f0, mean.shape[1])[:, :, None]).pow(2).mean()
        else:
            predicted = codec.decoder.frame_parameters(mean)
            target = stft_same(wav[:, 0], config.n_fft, config.hop_length, window).abs()
            frames = target.shape[-1]
            log_predicted = (predicted[:, : target.shape[1], :frames].exp() + 1e-3).log()
            difference = log_predicted - (target + 1e-3).log()
            loss = difference.abs().mean() if args.distance == "l1" else difference.pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % args.every == 0 or step == args.steps:
            within, median = score(codec, args.supervised)
            seconds = time.perf_counter() - begin
            rows.append(
                dict(
                    step=step,
                    within_50_cents=within,
                    median_cents=median,
                    loss=loss.item(),
                    seconds=round(seconds, 1),
                )
            )
            print(f"{step:>6}{within:>17.3f}{median:>14.0f}{loss.item():>9.3f}{seconds:>7.0f}")
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "threads")}
    tag = args.tag or json.dumps(settings, sort_keys=True)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        args.out, previous | {tag: dict(settings=settings, rows=rows, machine=platform.machine())}
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
