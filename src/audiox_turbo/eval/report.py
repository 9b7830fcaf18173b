"""`audiox-turbo eval`: score a folder of generated audio against reference clips and write
`report.json`, `report.md` and plots (metric bars, spectrograms of the best and worst clips)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiox_turbo.atomic import atomic_file
from audiox_turbo.errors import AudioXError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aiff", ".aif")
METRICS = ("fd", "fad_inf", "kad", "kl", "is", "clap")
DEFAULT_METRICS = ("fd", "kad", "kl", "is")
GRID_CLIPS = 3
"""Clips shown in each of the best and worst rows of the spectrogram grid."""


@dataclass(frozen=True)
class AudioSet:
    """Audio files to score: a name per clip (file stem or manifest id) and its caption."""

    source: Path
    names: list[str]
    paths: list[Path]
    captions: list[str | None]


def audio_set(source: str | os.PathLike[str]) -> AudioSet:
    """The audio files of a folder (recursively, sorted) or of a JSONL manifest; an empty or
    missing source raises an AudioXError naming it."""
    path = Path(source)
    if path.is_file() and path.suffix == ".jsonl":
        from audiox_turbo.data.manifest import manifest_root, read_manifest

        records = read_manifest(path)
        root = manifest_root(path)
        names = [r.id for r in records]
        paths = [r.audio_path(root) for r in records]
        captions: list[str | None] = [r.captions[0] if r.captions else None for r in records]
    elif path.is_dir():
        paths = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        names = [p.stem for p in paths]
        captions = [None] * len(paths)
    else:
        raise AudioXError(f"{path}: no such folder or .jsonl manifest")
    if not paths:
        raise AudioXError(f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return AudioSet(path, names, paths, captions)


def parse_metrics(text: str | None) -> list[str] | None:
    """Comma-separated metric names → list (None or "" → None: the defaults); unknown names
    raise an AudioXError."""
    if not text:
        return None
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise AudioXError(f"--metrics {text!r}: choose from {', '.join(METRICS)}")
    return names


def load_set(clips: AudioSet, sample_rate: int, progress: bool = True) -> list[np.ndarray]:
    """Mono float32 clips `(S,)` at `sample_rate` (each decoded, downmixed and resampled)."""
    from tqdm import tqdm

    from audiox_turbo.io.audio import load_audio

    out = []
    for path in tqdm(clips.paths, desc=f"load {clips.source.name}", disable=not progress):
        wav, _ = load_audio(path, sample_rate=sample_rate, channels=1)
        out.append(wav[0].numpy())
    return out


@dataclass
class Embedded:
    """Per-clip vectors `(N, dim)` (frame means for frame embedders), the embeddings the set
    metrics use `(M, dim)` (all frames, or the clip vectors), and class logits `(N, K)` or None."""

    clip_vectors: np.ndarray
    points: np.ndarray
    logits: np.ndarray | None


def _embed_group(embedder: Any, group: list[np.ndarray], with_logits: bool) -> tuple[Any, Any]:
    """Embeddings (and logits) of clips embedded together: clip embedders take any lengths,
    frame embedders need equal lengths (else one clip at a time)."""
    if embedder.kind == "frames" and len({c.size for c in group}) > 1:
        parts = [_embed_group(embedder, [c], with_logits) for c in group]
        logits = [p[1] for p in parts] if with_logits else None
        return [p[0][0] for p in parts], logits and np.concatenate(logits)
    if with_logits:
        emb, logits = embedder.embed_and_classify(group, embedder.sample_rate)
        return list(emb.numpy()), logits.numpy()
    return list(embedder.embed(group, embedder.sample_rate).numpy()), None


def embed_set(
    embedder: Any, clips: Sequence[np.ndarray], with_logits: bool, progress: bool = True
) -> Embedded:
    """Embed clips 16 at a time, with a progress bar."""
    from tqdm import tqdm

    vectors, points, logits = [], [], []
    for i in tqdm(range(0, len(clips), 16), desc=f"embed ({embedder.name})", disable=not progress):
        embeddings, group_logits = _embed_group(embedder, list(clips[i : i + 16]), with_logits)
        for emb in embeddings:
            arr = np.asarray(emb, dtype=np.float64)
            points.append(arr if arr.ndim == 2 else arr[None])
            vectors.append(arr.mean(axis=0) if arr.ndim == 2 else arr)
        if group_logits is not None:
            logits.append(group_logits)
    return Embedded(
        np.stack(vectors), np.concatenate(points), np.concatenate(logits) if logits else None
    )


def nearest_distances(gen: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Euclidean distance `(N,)` from each generated clip vector to its nearest reference."""
    d2 = np.sum(gen**2, 1)[:, None] + np.sum(ref**2, 1)[None, :] - 2.0 * gen @ ref.T
    return np.sqrt(np.clip(d2, 0.0, None).min(axis=1))


def compute_metrics(
    names: Sequence[str],
    gen: AudioSet,
    ref: AudioSet,
    gen_emb: Embedded,
    ref_emb: Embedded,
    activation: str,
    clap: Any = None,
    gen_audio: Sequence[np.ndarray] | None = None,
    sample_rate: int = 16000,
) -> dict[str, float]:
    """The requested metrics (see `METRICS`); KL pairs clips by name, CLAP needs captions."""
    import warnings

    from audiox_turbo.eval import metrics as m

    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in names:
            if name == "fd":
                out["fd"] = m.frechet_distance(ref_emb.points, gen_emb.points)
            elif name == "fad_inf":
                n = gen_emb.points.shape[0]
                if n < 3:
                    raise AudioXError(f"{gen.source}: FAD∞ needs at least 3 generated embeddings")
                result = m.fad_infinity(ref_emb.points, gen_emb.points, min_n=min(500, n // 2))
                out["fad_inf"] = result.score
            elif name == "kad":
                out["kad"] = m.kad(ref_emb.points, gen_emb.points)
            elif name == "kl":
                out.update(_kl(gen, ref, gen_emb, ref_emb, activation))
            elif name == "is":
                if gen_emb.logits is None:
                    raise AudioXError("is: the embedder has no classifier head")
                splits = min(10, gen_emb.logits.shape[0])
                mean, std = m.inception_score(gen_emb.logits, splits=splits, inputs="logits")
                out["is_mean"], out["is_std"] = mean, std
            elif name == "clap":
                out["clap"] = _clap(gen, ref, clap, gen_audio, sample_rate)
    return out


def _kl(
    gen: AudioSet, ref: AudioSet, gen_emb: Embedded, ref_emb: Embedded, activation: str
) -> dict[str, float]:
    from audiox_turbo.eval import metrics as m

    if gen_emb.logits is None or ref_emb.logits is None:
        raise AudioXError("kl: the embedder has no classifier head")
    ref_index = {n: i for i, n in enumerate(ref.names)}
    pairs = [(ref_index[n], i) for i, n in enumerate(gen.names) if n in ref_index]
    if not pairs:
        raise AudioXError(
            f"{gen.source}: kl pairs clips by name, but no generated file is named like a "
            f"reference clip of {ref.source}"
        )
    r = ref_emb.logits[[p[0] for p in pairs]]
    g = gen_emb.logits[[p[1] for p in pairs]]
    kind = "sigmoid" if activation == "sigmoid" else "softmax"
    return {
        "kl_ref_to_gen": m.kl_ref_to_gen(r, g, kind=kind),
        "kl_gen_to_ref": m.kl_gen_to_ref(r, g, kind=kind),
        "kl_pairs": float(len(pairs)),
    }


def _clap(
    gen: AudioSet,
    ref: AudioSet,
    clap: Any,
    gen_audio: Sequence[np.ndarray] | None,
    sample_rate: int,
) -> float:
    from audiox_turbo.eval import metrics as m

    if clap is None:
        raise AudioXError("clap: pass --clap-checkpoint with a LAION-CLAP checkpoint")
    captions = dict(zip(ref.names, ref.captions, strict=True))
    pairs = [(i, captions[n]) for i, n in enumerate(gen.names) if captions.get(n)]
    if not pairs or gen_audio is None:
        raise AudioXError(f"{ref.source}: clap needs a manifest with captions for the clip names")
    audio = clap.embed([gen_audio[i] for i, _ in pairs], sample_rate).numpy()
    text = clap.embed_text([c for _, c in pairs]).numpy()
    return m.clap_score(text, audio)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_report(report: dict[str, Any]) -> str:
    """The report as Markdown: settings, a metric table, the best and worst clips."""
    lines = [
        "# Evaluation report",
        "",
        f"- generated: `{report['gen']}` ({report['n_gen']} clips)",
        f"- reference: `{report['ref']}` ({report['n_ref']} clips)",
        f"- embedder: {report['embedder']} ({report['embedding_kind']} embeddings, "
        f"{report['embedder_sample_rate']} Hz)",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {_fmt(v)} |" for k, v in report["metrics"].items()),
        "",
        "Clip distance: Euclidean distance of the clip embedding to the nearest reference clip.",
        "",
        "| rank | best clip | distance | worst clip | distance |",
        "|---|---|---|---|---|",
    ]
    samples = report["samples"]
    for i in range(min(GRID_CLIPS, len(samples))):
        best, worst = samples[i], samples[-1 - i]
        lines.append(
            f"| {i + 1} | {best['name']} | {_fmt(best['distance'])} | {worst['name']} "
            f"| {_fmt(worst['distance'])} |"
        )
    if report.get("plots"):
        lines += ["", *(f"![{Path(p).stem}]({p})" for p in report["plots"])]
    return "\n".join(lines) + "\n"


def _log_spectrogram(clip: np.ndarray, sample_rate: int) -> np.ndarray:
    """`(n_mels=64, frames)` log mel power of a mono clip (512-point FFT, 10 ms hop at 16 kHz)."""
    from audiox_turbo.eval.features import periodic_hann
    from audiox_turbo.mel import mel_filterbank

    n_fft, hop = 512, max(1, sample_rate // 100)
    x = np.pad(clip.astype(np.float64), (n_fft // 2, n_fft // 2))
    count = max(1, 1 + (x.size - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * periodic_hann(n_fft), axis=1)) ** 2
    mel = power @ mel_filterbank(sample_rate, n_fft, 64, style="slaney")
    return np.log10(mel + 1e-10).T


def write_plots(
    out_dir: Path, report: dict[str, Any], gen_audio: Sequence[np.ndarray], sample_rate: int
) -> list[str]:
    """metrics.png (one bar per metric) and spectrograms.png (best and worst clips); returns
    the file names, or [] with a notice on stderr when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        import sys

        print("notice: matplotlib is not installed; skipping plots", file=sys.stderr)
        return []
    names = []
    scalar = {k: v for k, v in report["metrics"].items() if math.isfinite(v)}
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(scalar), 3.2))
    ax.bar(list(scalar), list(scalar.values()), color="#4c72b0")
    ax.set_title(f"{report['embedder']} metrics")
    fig.tight_layout()
    with atomic_file(out_dir / "metrics.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    names.append("metrics.png")
    samples = report["samples"]
    k = min(GRID_CLIPS, len(samples))
    rows = (("best", samples[:k]), ("worst", samples[::-1][:k]))
    fig, axes = plt.subplots(2, k, figsize=(3.2 * k, 5.2), squeeze=False)
    for r, (label, chosen) in enumerate(rows):
        for c, sample in enumerate(chosen):
            spec = _log_spectrogram(gen_audio[sample["index"]], sample_rate)
            axes[r][c].imshow(spec, origin="lower", aspect="auto", cmap="magma")
            axes[r][c].set_title(
                f"{label}: {sample['name']}\nd = {sample['distance']:.3g}", fontsize=8
            )
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
    fig.tight_layout()
    with atomic_file(out_dir / "spectrograms.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    names.append("spectrograms.png")
    return names


def evaluate(
    gen: str | os.PathLike[str],
    ref: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    embedder_name: str = "judge",
    checkpoint: str | os.PathLike[str] | None = None,
    metric_names: Sequence[str] | None = None,
    clap_checkpoint: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    plots: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Score `gen` against `ref`, write report.json, report.md and plots into `out_dir`, and
    return the report dictionary. Default metrics: fd, kad, and is when the embedder has a
    classifier head, and kl when some generated clip is named like a reference."""
    from audiox_turbo.atomic import write_json_atomic
    from audiox_turbo.eval.embedders import get_embedder

    gen_set, ref_set = audio_set(gen), audio_set(ref)
    if embedder_name == "judge":
        from audiox_turbo.eval.judge import load_judge_embedder

        embedder: Any = load_judge_embedder(checkpoint, device)
    else:
        embedder = get_embedder(embedder_name, checkpoint, device)
    if metric_names is None:
        tagger = hasattr(embedder, "embed_and_classify")
        paired = bool(set(gen_set.names) & set(ref_set.names))  # kl compares clips by name
        metric_names = [
            m
            for m in DEFAULT_METRICS
            if (tagger or m not in ("kl", "is")) and (paired or m != "kl")
        ]
    clap = None
    if "clap" in metric_names:
        if clap_checkpoint is None and embedder_name != "clap":
            raise AudioXError("clap: pass --clap-checkpoint with a LAION-CLAP checkpoint")
        clap = (
            embedder if embedder_name == "clap" else get_embedder("clap", clap_checkpoint, device)
        )
    with_logits = any(m in metric_names for m in ("kl", "is"))
    if with_logits and not hasattr(embedder, "embed_and_classify"):
        raise AudioXError(f"kl/is need a classifier head; embedder {embedder_name!r} has none")
    sr = embedder.sample_rate
    gen_audio = load_set(gen_set, sr, progress)
    ref_audio = load_set(ref_set, sr, progress)
    gen_emb = embed_set(embedder, gen_audio, with_logits, progress)
    ref_emb = embed_set(embedder, ref_audio, with_logits, progress)
    activation = getattr(embedder, "activation", "softmax")
    values = compute_metrics(
        metric_names, gen_set, ref_set, gen_emb, ref_emb, activation, clap, gen_audio, sr
    )
    distances = nearest_distances(gen_emb.clip_vectors, ref_emb.clip_vectors)
    order = np.argsort(distances, kind="stable")
    out = Path(out_dir)
    report: dict[str, Any] = {
        "gen": str(gen_set.source),
        "ref": str(ref_set.source),
        "n_gen": len(gen_set.paths),
        "n_ref": len(ref_set.paths),
        "embedder": embedder_name,
        "embedding_kind": embedder.kind,
        "embedder_sample_rate": sr,
        "metrics": values,
        "samples": [
            {"index": int(i), "name": gen_set.names[i], "distance": float(distances[i])}
            for i in order
        ],
        "plots": [],
    }
    if plots:
        report["plots"] = write_plots(out, report, gen_audio, sr)
    write_json_atomic(out / "report.json", report)
    with atomic_file(out / "report.md") as tmp:
        tmp.write_text(markdown_report(report))
    return report
