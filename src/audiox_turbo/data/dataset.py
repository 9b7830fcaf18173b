"""Map-style clip dataset from a manifest: crops, masks, resampling, video frames, task framing.

A sample is a dict: `audio` (C, S) float32, `audio_mask` (S,) bool (True = real audio, False =
padding), `prompt_mask` (S,) bool (True = audio given to the model as a prompt), `video`
(T, 3, H, W) uint8 with `video_mask` (T,) bool, the sampled caption `text`, per-modality
`*_present` flags, the task framing and metadata. Everything random is drawn from
`numpy.random.default_rng((seed, epoch, index))`, so a resumed run sees the same data.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from audiox_turbo.conditioning.beat import clip_first_beat
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.data.manifest import TASKS, ClipRecord, manifest_root, read_manifest
from audiox_turbo.errors import AudioXError, MediaError


@dataclass(frozen=True)
class MemoryFile:
    """A media file held in memory (a shard member); `name` carries its extension."""

    name: str
    data: bytes


MediaSource = Path | MemoryFile
"""A media file on disk or in memory."""

VIDEO_TASKS = frozenset({"V2A", "V2M", "TV2A", "TV2M"})
TEXT_TASKS = frozenset({"T2A", "T2M", "TV2A", "TV2M", "inpaint", "continue"})
AUDIO_PROMPT_TASKS = frozenset({"inpaint", "continue"})
INPAINT_SPAN = (0.2, 0.6)
CONTINUE_PREFIX = (0.2, 0.5)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for everything random about sample `index` in `epoch`."""
    return np.random.default_rng((seed, epoch, index))


def frame_mask(valid_samples: torch.Tensor | int, downsampling: int, frames: int) -> torch.Tensor:
    """Per-latent-frame validity: frame f is valid when it covers at least one real sample.

    valid_samples: int or (B,) -> (frames,) or (B, frames) bool.
    """
    valid = torch.as_tensor(valid_samples, dtype=torch.long)
    valid_frames = torch.div(valid + downsampling - 1, downsampling, rounding_mode="floor")
    return torch.arange(frames) < valid_frames.unsqueeze(-1)


def is_music(record: ClipRecord) -> bool | None:
    """True/False when the labels say whether the clip is music; None when they do not."""
    category = record.labels.get("category")
    return None if category is None else category == "music"


def compatible_tasks(record: ClipRecord, tasks: Sequence[str]) -> list[str]:
    """The framings of `tasks` the record can serve: video framings need a video, *M framings
    a music clip and *A framings a non-music clip (when the labels say which)."""
    music = is_music(record)
    out = []
    for task in tasks:
        if task in VIDEO_TASKS and record.video is None:
            continue
        if music is not None and task.endswith("M") and not music:
            continue
        if music is not None and task.endswith("A") and music:
            continue
        out.append(task)
    return out


def record_task(record: ClipRecord) -> str:
    """The record's own framing: `labels['task']`, else text(+video) to audio or music."""
    task = record.labels.get("task")
    if task is not None:
        if task not in TASKS:
            raise AudioXError(f"{record.id}: unknown task {task!r}; known: {', '.join(TASKS)}")
        return str(task)
    suffix = "M" if is_music(record) else "A"
    return ("TV2" if record.video is not None else "T2") + suffix


def draw_task(record: ClipRecord, tasks: Sequence[str] | None, rng: np.random.Generator) -> str:
    """The framing of one sample: the record's own (tasks None), else a seeded draw among the
    compatible `tasks`."""
    if tasks is None:
        return record_task(record)
    options = compatible_tasks(record, tasks)
    if not options:
        raise AudioXError(f"{record.id}: no framing among {list(tasks)}")
    return options[int(rng.integers(len(options)))]


def prompt_mask(task: str, length: int, valid: int, rng: np.random.Generator) -> torch.Tensor:
    """Which of `length` steps (samples or latent frames) are given as the audio prompt.

    inpaint: everything except one span of 20-60% of the valid part; continue: a prefix of
    20-50%; other framings: nothing. Returns (length,) bool.
    """
    mask = torch.zeros(length, dtype=torch.bool)
    if task == "inpaint" and valid > 1:
        span = max(1, round(rng.uniform(*INPAINT_SPAN) * valid))
        start = int(rng.integers(0, valid - span + 1))
        mask[:valid] = True
        mask[start : start + span] = False
    elif task == "continue" and valid > 1:
        mask[: max(1, round(rng.uniform(*CONTINUE_PREFIX) * valid))] = True
    return mask


def media_name(source: MediaSource) -> str:
    """How errors name a media source."""
    return source.name if isinstance(source, MemoryFile) else str(source)


@contextmanager
def _on_disk(source: MediaSource) -> Iterator[Path]:
    """A path holding the source's bytes (a temp file for in-memory sources).

    Errors that name the temp file are rewritten to name the source.
    """
    if isinstance(source, Path):
        yield source
        return
    suffix = Path(source.name).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="audiox-member-") as f:
        f.write(source.data)
        f.flush()
        try:
            yield Path(f.name)
        except MediaError as e:
            raise MediaError(str(e).replace(f.name, source.name)) from None


def decode_audio(
    source: MediaSource, sample_rate: int, channels: int, start: float, duration: float | None
) -> torch.Tensor:
    """Decode a window of audio at the model rate and channel count: (C, n) float32."""
    from audiox_turbo.io.audio import load_audio

    with _on_disk(source) as path:
        audio, _ = load_audio(
            path, sample_rate=sample_rate, channels=channels, start=start, duration=duration
        )
    return audio


def decode_video(
    source: MediaSource, fps: float, size: int, start: float, num_frames: int
) -> torch.Tensor:
    """Decode `num_frames` frames at `fps` from `start`: (T', 3, size, size) uint8, T' <= T."""
    from audiox_turbo.io.video import load_video_frames

    with _on_disk(source) as path:
        return load_video_frames(path, fps=fps, size=size, start=start, num_frames=num_frames)


class ClipSampleBuilder:
    """Turns one record + its media into a training sample (shared by every loader)."""

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        crop_seconds: float | None,
        video_fps: float | None = None,
        video_size: int | None = None,
        random_crop: bool = True,
        tasks: Sequence[str] | None = None,
        duration_tolerance: float = 0.1,
    ) -> None:
        if (video_fps is None) != (video_size is None):
            raise ValueError("video_fps and video_size are given together or not at all")
        unknown = sorted(set(tasks or ()) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.crop_seconds = crop_seconds
        self.video_fps = video_fps
        self.video_size = video_size
        self.random_crop = random_crop
        self.tasks = tuple(tasks) if tasks is not None else None
        self.duration_tolerance = duration_tolerance

    def accepts(self, record: ClipRecord) -> bool:
        """Whether the record can serve at least one of the requested framings."""
        return self.tasks is None or bool(compatible_tasks(record, self.tasks))

    def crop_start(self, duration: float, rng: np.random.Generator) -> float:
        """Crop start in seconds, on the model's sample grid."""
        if self.crop_seconds is None or not self.random_crop:
            return 0.0
        start = rng.uniform(0.0, max(0.0, duration - self.crop_seconds))
        return math.floor(start * self.sample_rate) / self.sample_rate

    def build(
        self,
        record: ClipRecord,
        audio: MediaSource,
        video: MediaSource | None,
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        """The sample dict for `record`; raises MediaError when the media are unusable."""
        task = draw_task(record, self.tasks, rng)
        text = record.captions[int(rng.integers(len(record.captions)))] if record.captions else ""
        start = self.crop_start(record.duration, rng)
        seconds = record.duration if self.crop_seconds is None else self.crop_seconds
        length = round(seconds * self.sample_rate)
        expected = min(length, round((record.duration - start) * self.sample_rate))

        wave = decode_audio(audio, self.sample_rate, self.channels, start, seconds)
        label = media_name(audio)
        if wave.shape[0] != self.channels:
            raise MediaError(f"{label}: decoded {wave.shape[0]} channels, wanted {self.channels}")
        if wave.shape[1] < expected - self.duration_tolerance * self.sample_rate:
            raise MediaError(
                f"{label}: decoded {wave.shape[1] / self.sample_rate:.3f} s from {start:.3f} s, "
                f"manifest says {record.duration:.3f} s in all"
            )
        valid = min(wave.shape[1], length)
        samples = torch.zeros(self.channels, length, dtype=torch.float32)
        samples[:, :valid] = wave[:, :valid]

        sample: dict[str, Any] = {
            "id": record.id,
            "task": task,
            "text": text if task in TEXT_TASKS else "",
            "text_present": task in TEXT_TASKS and bool(text),
            "audio": samples,
            "audio_mask": torch.arange(length) < valid,
            "prompt_mask": prompt_mask(task, length, valid, rng),
            "audio_prompt_present": task in AUDIO_PROMPT_TASKS,
            "crop_start": start,
            "first_beat": clip_first_beat(record.labels, start),
        }
        if self.video_fps is not None and self.video_size is not None:
            sample.update(self._video(record, video, task, start, seconds))
        return sample

    def _video(
        self,
        record: ClipRecord,
        video: MediaSource | None,
        task: str,
        start: float,
        seconds: float,
    ) -> dict[str, Any]:
        """Frames k at `start + k / fps` with their validity, zeros when not given."""
        assert self.video_fps is not None and self.video_size is not None
        count = max(1, round(seconds * self.video_fps))
        frames = torch.zeros(count, 3, self.video_size, self.video_size, dtype=torch.uint8)
        mask = torch.zeros(count, dtype=torch.bool)
        given = task in VIDEO_TASKS and video is not None
        if given:
            assert video is not None
            decoded = decode_video(video, self.video_fps, self.video_size, start, count)
            in_clip = math.ceil((record.duration - start) * self.video_fps - 1e-6)
            valid = max(0, min(decoded.shape[0], count, in_clip))
            if valid == 0:
                label = media_name(video)
                raise MediaError(f"{label}: no video frames from {start:.3f} s")
            frames[:valid] = decoded[:valid]
            mask[:valid] = True
        return {"video": frames, "video_mask": mask, "video_present": given}


class ClipDataset(Dataset):
    """Map-style dataset over a JSONL manifest.

    `dataset[i]` uses the epoch set by `set_epoch`; `dataset[(epoch, i)]` (what the training
    loop's `EpochChainBatchSampler` yields) names it explicitly, which also works with
    persistent workers. A sample whose media fail to decode or whose record is unusable (e.g.
    an unknown `labels["task"]`) is replaced by the next index that works (deterministically);
    `skipped` in the sample counts the replaced indices, `bad_ids` and `skipped` on the dataset
    hold this process's tally.
    """

    def __init__(
        self,
        manifest: str | os.PathLike[str],
        sample_rate: int,
        channels: int,
        crop_seconds: float | None,
        video_fps: float | None = None,
        video_size: int | None = None,
        random_crop: bool = True,
        seed: int = 0,
        tasks: Sequence[str] | None = None,
        duration_tolerance: float = 0.1,
        max_fallbacks: int = 16,
    ) -> None:
        self.manifest = Path(manifest)
        self.root = manifest_root(manifest)
        self.builder = ClipSampleBuilder(
            sample_rate,
            channels,
            crop_seconds,
            video_fps,
            video_size,
            random_crop,
            tasks,
            duration_tolerance,
        )
        self.records = [r for r in read_manifest(manifest) if self.builder.accepts(r)]
        if not self.records:
            raise AudioXError(f"{manifest}: no records for tasks {tasks}")
        self.seed = seed
        self.epoch = 0
        self.max_fallbacks = max_fallbacks
        self.skipped = 0
        self.bad_ids: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Crops, captions and framings of `dataset[i]` follow (seed, epoch, i)."""
        self.epoch = epoch

    def load(self, index: int, epoch: int) -> dict[str, Any]:
        """Sample `index` of `epoch`, raising MediaError when its media are unusable."""
        record = self.records[index]
        rng = sample_rng(self.seed, epoch, index)
        sample = self.builder.build(
            record, record.audio_path(self.root), record.video_path(self.root), rng
        )
        sample["index"] = index
        return sample

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        errors = []
        for offset in range(min(self.max_fallbacks, len(self))):
            candidate = (index + offset) % len(self)
            try:
                sample = self.load(candidate, epoch)
            except AudioXError as e:
                self.bad_ids[self.records[candidate].id] = str(e)
                self.skipped += 1
                errors.append(str(e))
                continue
            sample["skipped"] = offset
            return sample
        raise AudioXError(
            f"{self.manifest}: {len(errors)} consecutive samples from index {index} failed; "
            f"last: {errors[-1]}"
        )


def condition_inputs(batch: dict[str, Any]) -> ConditionInputs:
    """The conditioner's inputs of a collated batch: captions (None where the task has no
    text), cached caption features, video frames or cached video features, with their masks.
    The audio prompt is added by the training task, which encodes it with the codec."""
    present = batch["text_present"].tolist()
    text = [t if p else None for t, p in zip(batch["text"], present, strict=True)]
    return ConditionInputs(
        len(text),
        text=text,
        text_features=batch.get("text_features"),
        text_mask=batch.get("text_feature_mask"),
        video=batch.get("video"),
        video_features=batch.get("video_features"),
        video_mask=batch.get("video_mask", batch.get("video_feature_mask")),
        video_present=batch.get("video_present"),
        first_beat=batch.get("first_beat"),
    )


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch sample dicts: tensors are zero-padded to the largest shape and stacked, numbers
    and flags become tensors, strings and other values become lists; a batch of captioned
    clips also gets its `conditions` (`condition_inputs`)."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            batch[key] = _pad_stack(values)
        elif isinstance(first, bool):
            batch[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, int):
            batch[key] = torch.tensor(values, dtype=torch.long)
        elif isinstance(first, float):
            batch[key] = torch.tensor(values, dtype=torch.float64)
        else:
            batch[key] = values
    if "text_present" in batch:
        batch["conditions"] = condition_inputs(batch)
    return batch


def _pad_stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack tensors of equal rank, zero-padding each dimension at the end to the largest."""
    shape = [max(sizes) for sizes in zip(*(t.shape for t in tensors), strict=True)]
    if all(list(t.shape) == shape for t in tensors):
        return torch.stack(list(tensors))
    out = tensors[0].new_zeros((len(tensors), *shape))
    for i, t in enumerate(tensors):
        out[(i, *(slice(0, n) for n in t.shape))] = t
    return out
