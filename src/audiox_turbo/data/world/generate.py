"""Writes a split of the world: media files, one sidecar per finished clip, and the manifest.

Seeds: clip i of split s is drawn from `SeedSequence([seed, SPLITS.index(s), i])`; the split
index is part of the entropy, so no two splits ever share a clip stream. A clip is finished
when its sidecar `meta/<id>.json` (written last, atomically) exists, was made with the same
settings, and names media that exist with the right length; re-running regenerates only the
clips that are not finished, then rewrites the manifest atomically.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiox_turbo.atomic import atomic_file, remove_stale_temps
from audiox_turbo.data.manifest import ClipRecord, write_manifest
from audiox_turbo.data.world.clip import draw_clip
from audiox_turbo.data.world.media import write_mp4
from audiox_turbo.errors import AudioXError
from audiox_turbo.io.audio import save_audio

SPLITS = ("train", "val", "test")
SOURCE = "audiox-turbo world"
SOURCE_FAMILIES = ("synthetic", "real")
"""`synthetic`: every sound from formulas; `real`: sampled instruments, recorded and espeak-ng
speech, recorded and sampled effects (needs the sources, `audiox-turbo data sources fetch`)."""
REAL_SOURCES = ("gm", "gs", "avldrums", "prompts", "transcripts", "espeak", "animals",
                "renderer", "g722", "rooms")  # fmt: skip
"""The sources a real world needs."""


def resolve_sources(sources: str) -> str:
    """`auto` → `real` when every real source is present, else `synthetic`; others checked."""
    from audiox_turbo.data.world.sources.catalog import missing, require

    if sources == "auto":
        return "synthetic" if missing(REAL_SOURCES) else "real"
    if sources not in SOURCE_FAMILIES:
        raise AudioXError(f"--sources {sources!r}: expected auto, real or synthetic")
    if sources == "real":
        for name in REAL_SOURCES:
            require(name)
    return sources


@dataclass(frozen=True)
class WorldSpec:
    """Settings shared by every clip of one generated split."""

    seed: int
    split: str
    duration: float
    sample_rate: int
    video_fraction: float
    fps: int = 25
    size: int = 128
    sources: str = "synthetic"

    def clip_id(self, index: int) -> str:
        """Identifier (and media file stem) of clip `index`."""
        return f"{self.split}-{index:06d}"


def clip_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed sequence of clip `index` of `split`; disjoint across splits for any seed."""
    return np.random.SeedSequence([seed, SPLITS.index(split), index])


def make_clip(out_dir: Path, spec: WorldSpec, index: int) -> ClipRecord:
    """Generate clip `index`, write its media then its sidecar atomically; return its record."""
    rng = np.random.default_rng(clip_seed(spec.seed, spec.split, index))
    draw = draw_clip
    if spec.sources == "real":
        from audiox_turbo.data.world.real_clip import draw_real_clip as draw
    clip = draw(rng, spec.duration, spec.sample_rate, spec.video_fraction, spec.fps, spec.size)
    clip_id = spec.clip_id(index)
    audio_rel = f"audio/{clip_id}.wav"
    save_audio(out_dir / audio_rel, torch.from_numpy(clip.audio)[None], spec.sample_rate)
    video_rel = None
    if clip.frames is not None:
        video_rel = f"video/{clip_id}.mp4"
        write_mp4(out_dir / video_rel, clip.frames, spec.fps)
    labels = {**clip.labels, "seed": [spec.seed, SPLITS.index(spec.split), index]}
    record = ClipRecord(
        id=clip_id,
        audio=audio_rel,
        video=video_rel,
        captions=clip.captions,
        duration=len(clip.audio) / spec.sample_rate,
        sample_rate=spec.sample_rate,
        channels=1,
        labels=labels,
        split=spec.split,
        source=SOURCE if spec.sources == "synthetic" else f"{SOURCE} (real sources)",
    )
    sidecar = {"spec": asdict(spec), "record": record.model_dump(mode="json")}
    with atomic_file(out_dir / "meta" / f"{clip_id}.json") as tmp:
        tmp.write_text(json.dumps(sidecar, sort_keys=True))
    return record


def finished_record(out_dir: Path, spec: WorldSpec, index: int) -> ClipRecord | None:
    """The record of clip `index` if it is finished with these settings, else None."""
    import soundfile as sf

    meta = out_dir / "meta" / f"{spec.clip_id(index)}.json"
    try:
        sidecar: dict[str, Any] = json.loads(meta.read_text())
        if sidecar["spec"] != asdict(spec):
            return None
        record = ClipRecord.model_validate(sidecar["record"])
        frames = sf.info(str(record.audio_path(out_dir))).frames
    except (OSError, ValueError, KeyError, RuntimeError):
        return None
    if frames != round(record.duration * record.sample_rate):
        return None
    video = record.video_path(out_dir)
    if video is not None and (not video.is_file() or video.stat().st_size == 0):
        return None
    return record


def _check_arguments(
    clips: int,
    seed: int,
    split: str,
    duration: float,
    sample_rate: int,
    video_fraction: float,
    workers: int,
) -> None:
    if split not in SPLITS:
        raise AudioXError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    if clips < 0:
        raise AudioXError(f"--clips {clips}: must be >= 0")
    if seed < 0:
        raise AudioXError(f"--seed {seed}: must be >= 0")
    if not 0.5 <= duration <= 600:
        raise AudioXError(f"--duration {duration}: must be between 0.5 and 600 seconds")
    if not 8000 <= sample_rate <= 192000:
        raise AudioXError(f"--sample-rate {sample_rate}: must be between 8000 and 192000 Hz")
    if not 0.0 <= video_fraction <= 1.0:
        raise AudioXError(f"--video-fraction {video_fraction}: must be between 0 and 1")
    if workers < 1:
        raise AudioXError(f"--workers {workers}: must be >= 1")


def generate_world(
    out_dir: str | os.PathLike[str],
    clips: int,
    seed: int,
    split: str,
    duration: float = 5.0,
    sample_rate: int = 16000,
    video_fraction: float = 0.4,
    workers: int = 1,
    progress: bool = True,
    sources: str = "synthetic",
) -> Path:
    """Generate clips 0..clips-1 of `split` under out_dir (audio/, video/, meta/) and write
    `<split>.jsonl`; resumable, identical for any number of workers. `sources`: synthetic, real
    or auto (real when its sources are present). Returns the manifest."""
    from tqdm import tqdm

    _check_arguments(clips, seed, split, duration, sample_rate, video_fraction, workers)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AudioXError(f"{out}: not a directory")
    for sub in ("audio", "video", "meta"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out / sub)
    family = resolve_sources(sources)
    spec = WorldSpec(
        seed, split, float(duration), int(sample_rate), float(video_fraction), sources=family
    )
    records: dict[int, ClipRecord] = {}
    for i in range(clips):
        done = finished_record(out, spec, i)
        if done is not None:
            records[i] = done
    missing = [i for i in range(clips) if i not in records]
    with tqdm(
        total=clips, initial=len(records), disable=not progress, desc=f"world {split}", unit="clip"
    ) as bar:
        if workers == 1 or len(missing) <= 1:
            for i in missing:
                records[i] = make_clip(out, spec, i)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(missing))) as pool:
                futures = {pool.submit(make_clip, out, spec, i): i for i in missing}
                for future in as_completed(futures):
                    records[futures[future]] = future.result()
                    bar.update()
    manifest = out / f"{split}.jsonl"
    write_manifest(manifest, (records[i] for i in range(clips)))
    return manifest
