"""Latent caches: codec latents (and frozen text/video features) pre-encoded into shards.

Each sample in a latent shard holds `<key>.json` (the ClipRecord plus the cache geometry),
`<key>.latents.npy` (D, F) for the whole clip, and optionally `<key>.text.npy` (one row per
caption), `<key>.text_mask.npy` and `<key>.video.npy` (frames at `video_fps`, dim). Arrays are
plain `.npy` (no pickles). Teacher training reads them with `LatentShardDataset` and skips the
codec entirely.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiox_turbo.conditioning.beat import clip_first_beat
from audiox_turbo.data.dataset import (
    AUDIO_PROMPT_TASKS,
    TEXT_TASKS,
    VIDEO_TASKS,
    compatible_tasks,
    decode_audio,
    decode_video,
    draw_task,
    frame_mask,
    prompt_mask,
)
from audiox_turbo.data.manifest import ClipRecord, manifest_root, read_manifest
from audiox_turbo.data.shards import Members, ShardIndex, ShardStream, ShardWriter, record_from
from audiox_turbo.errors import MediaError

AudioEncoder = Callable[[torch.Tensor], torch.Tensor]
"""(B, C, S) float32 waveforms -> (B, D, T) latents."""
TextEncoder = Callable[[list[str]], Any]
"""captions -> Tensor (N, ...) or an object with `.tokens` (N, L, dim) and `.mask` (N, L)."""
VideoEncoder = Callable[[torch.Tensor], torch.Tensor]
"""(1, T, 3, H, W) uint8 frames -> (1, T, dim) per-frame features."""


def npy_bytes(array: torch.Tensor | np.ndarray) -> bytes:
    """A tensor as `.npy` bytes (no pickle)."""
    buf = io.BytesIO()
    value = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else array
    np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
    return buf.getvalue()


def npy_tensor(data: bytes) -> torch.Tensor:
    """A tensor from `.npy` bytes; refuses pickled arrays."""
    return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))


def _text_members(encode_text: TextEncoder, captions: list[str]) -> Members:
    """Cached caption features (and their token mask when the encoder gives one)."""
    out = encode_text(captions)
    if hasattr(out, "tokens") and hasattr(out, "mask"):
        return {"text.npy": npy_bytes(out.tokens.float()), "text_mask.npy": npy_bytes(out.mask)}
    return {"text.npy": npy_bytes(torch.as_tensor(out).float())}


def encode_to_shards(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    encode_audio: AudioEncoder,
    encode_text: TextEncoder | None = None,
    encode_video: VideoEncoder | None = None,
    *,
    sample_rate: int,
    channels: int,
    downsampling: int,
    video_fps: float | None = None,
    video_size: int | None = None,
    batch_size: int = 8,
    shard_size_bytes: int = 256 * 2**20,
    latent_dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> ShardIndex:
    """Encode every clip of a manifest (whole clips, batched, padded to a multiple of
    `downsampling`) into latent shards plus `index.json`; clips that fail to decode are left
    out and listed in the index's `skipped`."""
    from tqdm import tqdm

    if encode_video is not None and (video_fps is None or video_size is None):
        raise ValueError("encode_video needs video_fps and video_size")
    root = manifest_root(manifest)
    records = read_manifest(manifest)
    writer = ShardWriter(out_dir, shard_size_bytes, prefix="latents")
    skipped: dict[str, str] = {}
    bar = tqdm(total=len(records), desc="encode", unit="clip", disable=not progress)
    try:
        for first in range(0, len(records), batch_size):
            batch: list[tuple[int, ClipRecord, torch.Tensor]] = []
            for n, record in enumerate(records[first : first + batch_size], first):
                try:
                    wave = decode_audio(record.audio_path(root), sample_rate, channels, 0.0, None)
                except MediaError as e:
                    skipped[record.id] = str(e)
                    continue
                batch.append((n, record, wave))
            if batch:
                _encode_batch(
                    batch, root, writer, skipped, encode_audio, encode_text, encode_video,
                    sample_rate, downsampling, video_fps, video_size, latent_dtype,
                )  # fmt: skip
            bar.update(min(batch_size, len(records) - first))
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    meta = {
        "manifest": str(manifest),
        "sample_rate": sample_rate,
        "channels": channels,
        "downsampling": downsampling,
        "latent_rate": sample_rate / downsampling,
        "video_fps": video_fps if encode_video is not None else None,
    }
    index = ShardIndex(shards, kind="latents", skipped=skipped, meta=meta)
    index.write(out_dir)
    return index


@torch.inference_mode()
def _encode_batch(
    batch: list[tuple[int, ClipRecord, torch.Tensor]],
    root: Path,
    writer: ShardWriter,
    skipped: dict[str, str],
    encode_audio: AudioEncoder,
    encode_text: TextEncoder | None,
    encode_video: VideoEncoder | None,
    sample_rate: int,
    downsampling: int,
    video_fps: float | None,
    video_size: int | None,
    latent_dtype: torch.dtype,
) -> None:
    """Encode one padded batch and append its samples to the writer."""
    longest = max(w.shape[1] for _, _, w in batch)
    padded = math.ceil(longest / downsampling) * downsampling
    waves = torch.zeros(len(batch), batch[0][2].shape[0], padded)
    for i, (_, _, w) in enumerate(batch):
        waves[i, :, : w.shape[1]] = w
    latents = encode_audio(waves)
    for i, (n, record, wave) in enumerate(batch):
        frames = -(-wave.shape[1] // downsampling)
        members: Members = {"latents.npy": npy_bytes(latents[i, :, :frames].to(latent_dtype))}
        try:
            if encode_text is not None and record.captions:
                members.update(_text_members(encode_text, list(record.captions)))
            if encode_video is not None:
                assert video_fps is not None and video_size is not None
                count = max(1, round(wave.shape[1] / sample_rate * video_fps))
                members["video.npy"] = npy_bytes(
                    _video_features(record, root, encode_video, video_fps, video_size, count)
                )
        except MediaError as e:
            skipped[record.id] = str(e)
            continue
        fields = record.model_dump(mode="json")
        fields["cache"] = {
            "latent_frames": frames,
            "valid_samples": wave.shape[1],
            "downsampling": downsampling,
            "latent_rate": sample_rate / downsampling,
            "video_fps": video_fps if "video.npy" in members else None,
        }
        members = {"json": json.dumps(fields, sort_keys=True).encode(), **members}
        writer.add(f"{n:09d}", members)


def _video_features(
    record: ClipRecord,
    root: Path,
    encode_video: VideoEncoder,
    fps: float,
    size: int,
    count: int,
) -> torch.Tensor:
    """(T, ...) features of `count` frames at `fps`; (0, ...) for a clip without video, so
    every cached sample carries the feature shape."""
    path = record.video_path(root)
    if path is None:
        blank = torch.zeros(1, 1, 3, size, size, dtype=torch.uint8)
        return encode_video(blank)[0, :0].float()
    frames = decode_video(path, fps, size, 0.0, count)
    return encode_video(frames[None])[0].float()


class LatentShardDataset(ShardStream):
    """Iterable samples of cached latents: crops in latent frames with masks and features.

    Yields `latents` (D, F) float32, `latent_mask` (F,) and `prompt_mask` (F,) bool, the
    sampled caption `text` with its cached `text_features` (and `text_feature_mask`), aligned
    `video_features` (Tv, dim) with `video_feature_mask`, presence flags, the task and `id`.
    `crop_frames=None` yields whole clips (collate pads them). With `min_crop_frames`, each
    sample keeps a random length in [min_crop_frames, crop_frames] and the rest of its
    `crop_frames` is padding (masked), so one batch shape teaches every length in between.
    """

    def __init__(
        self,
        urls_or_dir: str | os.PathLike[str] | Sequence[str],
        crop_frames: int | None,
        random_crop: bool = True,
        seed: int = 0,
        tasks: Sequence[str] | None = None,
        shuffle: bool = True,
        buffer_size: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
        video_repeats: int = 1,
        video_groups: int = 0,
        min_crop_frames: int | None = None,
    ) -> None:
        if min_crop_frames is not None and (crop_frames is None or min_crop_frames > crop_frames):
            raise ValueError(f"min_crop_frames {min_crop_frames} needs crop_frames >= it")
        super().__init__(
            urls_or_dir, seed, shuffle, buffer_size, rank, world_size, video_repeats, video_groups
        )
        self.crop_frames = crop_frames
        self.random_crop = random_crop
        self.min_crop_frames = min_crop_frames
        self.tasks = tuple(tasks) if tasks is not None else None

    def decode(self, key: str, members: Members, rng: np.random.Generator) -> dict[str, Any] | None:
        record = record_from(_strip_cache(members))
        if self.tasks is not None and not compatible_tasks(record, self.tasks):
            return None
        cache = json.loads(members["json"])["cache"]
        if "latents.npy" not in members:
            raise MediaError(f"{key}: no latents member")
        task = draw_task(record, self.tasks, rng)
        caption = int(rng.integers(len(record.captions))) if record.captions else -1
        full = npy_tensor(members["latents.npy"]).float()
        total = full.shape[1]
        length = total if self.crop_frames is None else self.crop_frames
        kept = length
        if self.min_crop_frames is not None:
            kept = int(rng.integers(self.min_crop_frames, length + 1))
        start = 0
        if self.random_crop and self.crop_frames is not None:
            start = int(rng.integers(0, max(0, total - kept) + 1))
        valid = max(0, min(kept, total - start))
        latents = torch.zeros(full.shape[0], length)
        latents[:, :valid] = full[:, start : start + valid]
        latent_rate = float(cache["latent_rate"])
        sample: dict[str, Any] = {
            "id": record.id,
            "task": task,
            "text": record.captions[caption] if task in TEXT_TASKS and caption >= 0 else "",
            "text_present": task in TEXT_TASKS and caption >= 0,
            "latents": latents,
            "latent_mask": frame_mask(valid, 1, length),
            "prompt_mask": prompt_mask(task, length, valid, rng),
            "audio_prompt_present": task in AUDIO_PROMPT_TASKS,
            "crop_start": start / latent_rate,
            "first_beat": clip_first_beat(record.labels, start / latent_rate),
        }
        if "text.npy" in members:
            features = npy_tensor(members["text.npy"]).float()
            sample["text_features"] = features[max(caption, 0)]
            if "text_mask.npy" in members:
                sample["text_feature_mask"] = npy_tensor(members["text_mask.npy"])[max(caption, 0)]
        if "video.npy" in members:
            sample.update(
                _video_window(
                    npy_tensor(members["video.npy"]).float(), cache, start, length, kept, task
                )
            )
        return sample


def _video_window(
    features: torch.Tensor, cache: dict[str, Any], start: int, length: int, kept: int, task: str
) -> dict[str, Any]:
    """Per-frame video features for a latent crop of `length` frames whose first `kept` are
    audio: the frame nearest `start` onward, none past the kept audio."""
    fps = float(cache["video_fps"])
    latent_rate = float(cache["latent_rate"])
    first = round(start / latent_rate * fps)
    count = max(1, round(length / latent_rate * fps))
    window = torch.zeros(count, *features.shape[1:])
    in_crop = max(1, round(kept / latent_rate * fps))
    valid = max(0, min(in_crop, features.shape[0] - first))
    window[:valid] = features[first : first + valid]
    given = task in VIDEO_TASKS and valid > 0
    return {
        "video_features": window,
        "video_feature_mask": torch.arange(count) < (valid if given else 0),
        "video_present": given,
    }


def _strip_cache(members: Members) -> Members:
    """Members with the `cache` entry removed from the json, so it parses as a ClipRecord."""
    fields = json.loads(members["json"])
    fields.pop("cache", None)
    return {**members, "json": json.dumps(fields).encode()}
