"""Codec reconstruction quality on a labelled world split: the world judge and the measurements
on the originals and on their reconstructions (issue 14's codec gate), plus spectral distances.

Every clip is encoded to its posterior mean and decoded; the reconstructions are written as WAVs
with a copy of the manifest (same labels), and `eval.judge.judge_accuracy` runs on both.
Gate: judge class accuracy on reconstructions within 2 points of the originals. Pitch, without
the judge: harmonic tones on every semitone from C3 to C6 are reconstructed and the pitch of each
reconstruction is estimated (harmonic sum over a 10-cent grid); reported as the share within 50
cents and the median error.
Usage: python benchmarks/bench_codec_quality.py --model DIR --world WORLD [--split test]
[--clips N] [--judge DIR] [--work DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results" / "codec_quality.json"
JUDGED = (
    "class_accuracy",
    "category_accuracy",
    "instrument_f1",
    "key_accuracy",
    "tempo_accuracy_4pct",
    "onset_recall_50ms",
)


def reconstruct(
    codec: torch.nn.Module, world: Path, split: str, clips: int | None, work: Path
) -> dict:
    """Reconstruct the split's clips into `work` (audio + manifest); spectral distances."""
    from audiox_turbo.data.manifest import manifest_root, read_manifest, write_manifest
    from audiox_turbo.eval.judge import load_clips, resolve_manifest
    from audiox_turbo.io.audio import save_audio
    from audiox_turbo.train.losses import mel_distance, multi_resolution_stft_loss, si_sdr

    rate = codec.config.sample_rate
    manifest = resolve_manifest(world, split)
    records = read_manifest(manifest)[:clips]
    root = manifest_root(manifest)
    waves = load_clips([r.audio_path(root) for r in records], rate)
    stft, mel, sdr, seconds = [], [], [], 0.0
    (work / "audio").mkdir(parents=True, exist_ok=True)
    out_records = []
    with torch.inference_mode():
        for start in range(0, len(records), 16):
            wav = waves[start : start + 16, None]
            begin = time.perf_counter()
            recon = codec.decode(codec.encode(wav, sample=False))[..., : wav.shape[-1]]
            seconds += time.perf_counter() - begin
            for i, record in enumerate(records[start : start + 16]):
                name = f"audio/{record.id}.wav"
                save_audio(work / name, recon[i].clamp(-1, 1), rate)
                out_records.append(record.model_copy(update={"audio": name}))
                stft.append(float(multi_resolution_stft_loss(recon[i : i + 1], wav[i : i + 1])))
                mel.append(float(mel_distance(recon[i : i + 1], wav[i : i + 1], rate)))
            sdr.extend(si_sdr(recon, wav).tolist())
    write_manifest(work / f"{split}.jsonl", out_records)
    return {
        "manifest": str(manifest),
        "reconstructed_manifest": str(work / f"{split}.jsonl"),
        "clips": len(records),
        "codec": codec.config.kind,
        "mr_stft_distance": sum(stft) / len(stft),
        "mel_distance": sum(mel) / len(mel),
        "si_sdr_db": sum(sdr) / len(sdr),
        "codec_seconds": seconds,
    }


def harmonic_tone(f0: float, rate: int, seconds: float) -> torch.Tensor:
    """(S,) a tone of four harmonics with 1/h amplitudes at peak ~0.5."""
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    wave = sum(torch.sin(2 * torch.pi * f0 * h * t) / h for h in (1, 2, 3, 4))
    return (0.25 * wave).float()


def estimate_pitch(wave: torch.Tensor, rate: int, low: float = 80.0, high: float = 1200.0) -> float:
    """f0 (Hz) of a mono wave (S,): argmax over a 10-cent grid of the summed log STFT magnitude
    at the first four harmonics (a log, so a subharmonic missing its own harmonics loses)."""
    n_fft = 8192
    spec = torch.stft(wave, n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True)
    magnitude = spec.abs().mean(-1)
    magnitude = (magnitude + 1e-3 * magnitude.max()).log()
    cents = torch.arange(0.0, 1200 * torch.log2(torch.tensor(high / low)).item(), 10.0)
    candidates = low * 2 ** (cents / 1200)
    bins = [(h * candidates * n_fft / rate).round().long() for h in (1, 2, 3, 4)]
    score = sum(magnitude[b.clamp(max=magnitude.shape[0] - 1)] for b in bins)
    return float(candidates[score.argmax()])


SEMITONES_C3_C6 = torch.arange(48, 85, dtype=torch.float64)


def semitone_hz(notes: torch.Tensor) -> torch.Tensor:
    """MIDI note numbers -> Hz (A4 = 440)."""
    return 440 * 2 ** ((notes - 69) / 12)


def tone_errors_cents(codec: torch.nn.Module, rate: int) -> torch.Tensor:
    """(37,) |pitch error| in cents of `codec`'s reconstructions of tones on each semitone
    C3..C6 (1.5 s each; the pitch is estimated on the middle second)."""
    f0 = semitone_hz(SEMITONES_C3_C6)
    tones = torch.stack([harmonic_tone(float(f), rate, 1.5) for f in f0])
    with torch.inference_mode():
        recon = codec.decode(codec.encode(tones[:, None], sample=False))[:, 0, : tones.shape[-1]]
    trim = slice(rate // 4, -rate // 4)
    estimates = torch.tensor([estimate_pitch(wave[trim], rate) for wave in recon])
    return (1200 * torch.log2(estimates.double() / f0)).abs()


def tone_pitch(codec: torch.nn.Module) -> dict[str, float]:
    """Pitch kept by the codec: tones on each semitone C3..C6 through encode/decode; share of
    reconstructions within 50 cents and the median error in cents."""
    cents = tone_errors_cents(codec, codec.config.sample_rate)
    return {
        "tones": len(cents),
        "tone_pitch_within_50_cents": float((cents <= 50).float().mean()),
        "tone_pitch_median_error_cents": float(cents.median()),
    }


def measure(
    codec: torch.nn.Module,
    world: Path,
    split: str,
    clips: int | None,
    judge: Any,
    work: Path,
) -> dict[str, Any]:
    """Reconstructions of the split's first `clips` clips, the tone test, and the judge's
    measurements on originals and reconstructions, with the class-accuracy gate."""
    from audiox_turbo.data.manifest import read_manifest, write_manifest
    from audiox_turbo.eval.judge import judge_accuracy, resolve_manifest

    row: dict[str, Any] = reconstruct(codec, world, split, clips, work)
    row |= tone_pitch(codec)
    original = resolve_manifest(world, split)
    if clips is not None:
        records = read_manifest(original)[:clips]
        root = original.resolve().parent
        original = work / f"original_{split}.jsonl"
        write_manifest(
            original, [r.model_copy(update={"audio": str(r.audio_path(root))}) for r in records]
        )
    row["original"] = judge_accuracy(judge, original, progress=False)
    row["reconstructed"] = judge_accuracy(judge, row["reconstructed_manifest"], progress=False)
    gap = row["original"]["class_accuracy"] - row["reconstructed"]["class_accuracy"]
    row["class_accuracy_gap_points"] = 100 * gap
    row["gate_passed"] = 100 * gap <= 2.0
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model directory (its codec)")
    parser.add_argument("--world", type=Path, required=True, help="world folder or manifest")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=None)
    parser.add_argument("--judge", type=Path, default=None, help="judge dir (default: shipped)")
    parser.add_argument("--work", type=Path, default=None, help="where reconstructions go")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from audiox_turbo.atomic import write_json_atomic
    from audiox_turbo.eval.judge import load_judge_embedder
    from audiox_turbo.model_dir import load_native_components

    work = args.work or Path(tempfile.mkdtemp(prefix="codec_quality_"))
    _, modules = load_native_components(args.model)
    judge = load_judge_embedder(args.judge)
    row = measure(modules["codec"].eval(), args.world, args.split, args.clips, judge, work)

    print(f"codec {args.model} ({row['codec']}), {row['clips']} clips of {row['manifest']}")
    print(f"{'measure':<24}{'originals':>12}{'reconstructions':>17}")
    for key in JUDGED:
        print(f"{key:<24}{row['original'][key]:>12.3f}{row['reconstructed'][key]:>17.3f}")
    print(
        f"harmonic tones C3..C6: {row['tone_pitch_within_50_cents']:.2f} within 50 cents, "
        f"median error {row['tone_pitch_median_error_cents']:.0f} cents"
    )
    gate = "passed" if row["gate_passed"] else "missed"
    print(
        f"MR-STFT distance {row['mr_stft_distance']:.3f}, mel distance {row['mel_distance']:.3f}, "
        f"SI-SDR {row['si_sdr_db']:.1f} dB; class-accuracy gap "
        f"{row['class_accuracy_gap_points']:.1f} points: gate {gate}"
    )
    write_json_atomic(
        args.out,
        {
            "benchmark": "codec_quality",
            "machine": {"platform": platform.platform(), "threads": args.threads},
            "model": str(args.model),
            **row,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
