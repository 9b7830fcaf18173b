"""WebDataset tar shards: writing them from a manifest and reading them back as a stream.

A shard is a plain tar whose members are grouped by key: `<key>.json` (the ClipRecord, with
media names pointing at the sibling members), `<key>.wav|flac|...` and optionally
`<key>.mp4`. `index.json` beside the shards lists them with their sample counts. Shards are
read through fsspec, so any URL fsspec understands works as well as a local path.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from audiox_turbo.atomic import PendingFile, write_json_atomic
from audiox_turbo.data.dataset import ClipSampleBuilder, MemoryFile
from audiox_turbo.data.manifest import ClipRecord, manifest_root, read_manifest
from audiox_turbo.errors import AudioXError, MediaError

INDEX_NAME = "index.json"
INDEX_FORMAT = "audiox-turbo-shards"
TAR_BLOCK = 512

Members = dict[str, bytes]
"""The members of one sample, by extension (`json`, `wav`, `mp4`, ...)."""


@dataclass(frozen=True)
class ShardInfo:
    """One written shard: file name (relative to the index), samples and bytes."""

    name: str
    samples: int
    bytes: int


@dataclass
class ShardIndex:
    """What a shard folder holds; `skipped` lists records left out (id: reason)."""

    shards: list[ShardInfo]
    kind: str = "clips"
    skipped: dict[str, str] | None = None
    meta: dict[str, Any] | None = None

    @property
    def total_samples(self) -> int:
        return sum(s.samples for s in self.shards)

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write `index.json` atomically into `out_dir`; returns its path."""
        path = Path(out_dir) / INDEX_NAME
        write_json_atomic(
            path,
            {
                "format": INDEX_FORMAT,
                "version": 1,
                "kind": self.kind,
                "total_samples": self.total_samples,
                "shards": [vars(s) for s in self.shards],
                "skipped": self.skipped or {},
                "meta": self.meta or {},
            },
        )
        return path

    @staticmethod
    def read(url: str) -> ShardIndex:
        """Read an index from a path or fsspec URL; errors name the file."""
        import fsspec

        try:
            with fsspec.open(url, "rt") as f:
                data = json.load(f)
            if data.get("format") != INDEX_FORMAT:
                raise AudioXError(f"{url}: not an audiox-turbo shard index")
            return ShardIndex(
                shards=[ShardInfo(**s) for s in data["shards"]],
                kind=data.get("kind", "clips"),
                skipped=data.get("skipped") or {},
                meta=data.get("meta") or {},
            )
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise AudioXError(f"{url}: unreadable shard index ({e})") from None


def _tar_size(members: Members) -> int:
    """Bytes the members take in a tar: a header block each plus data padded to blocks."""
    return sum(TAR_BLOCK + math.ceil(len(b) / TAR_BLOCK) * TAR_BLOCK for b in members.values())


class ShardWriter:
    """Appends samples to `prefix-000000.tar`, `prefix-000001.tar`, ... rolling over at a size.

    Each shard is written to a temp file in `out_dir` and renamed when complete; member
    metadata is fixed (mtime 0, uid 0) so equal inputs give byte-identical shards.
    """

    def __init__(
        self, out_dir: str | os.PathLike[str], shard_size_bytes: int, prefix: str = "shard"
    ) -> None:
        if shard_size_bytes <= 0:
            raise ValueError(f"shard size must be positive, got {shard_size_bytes}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size_bytes = shard_size_bytes
        self.prefix = prefix
        self.shards: list[ShardInfo] = []
        self._tar: tarfile.TarFile | None = None
        self._pending: PendingFile | None = None
        self._samples = 0
        self._bytes = 0

    def add(self, key: str, members: Members) -> None:
        """Append one sample (`key` must not contain dots or slashes)."""
        if "." in key or "/" in key:
            raise ValueError(f"shard key {key!r} must not contain '.' or '/'")
        size = _tar_size(members)
        if self._tar is not None and self._bytes + size > self.shard_size_bytes:
            self._finish()
        if self._tar is None:
            self._open()
        assert self._tar is not None
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self._samples += 1
        self._bytes += size

    def close(self) -> list[ShardInfo]:
        """Finish the open shard; returns every shard written."""
        if self._tar is not None:
            self._finish()
        return self.shards

    def _open(self) -> None:
        self._pending = PendingFile(self.out_dir / f"{self.prefix}-{len(self.shards):06d}.tar")
        self._tar = tarfile.open(  # noqa: SIM115
            self._pending.tmp, "w", format=tarfile.USTAR_FORMAT
        )
        self._samples = 0
        self._bytes = 0

    def _finish(self) -> None:
        assert self._tar is not None and self._pending is not None
        self._tar.close()
        path = self._pending.commit()
        self.shards.append(ShardInfo(path.name, self._samples, path.stat().st_size))
        self._tar = None
        self._pending = None

    def abort(self) -> None:
        """Drop the unfinished shard (on error)."""
        if self._tar is not None:
            self._tar.close()
        if self._pending is not None:
            self._pending.discard()
        self._tar = None
        self._pending = None


def _flac_bytes(path: Path) -> bytes:
    """Re-encode an audio file as 16- or 24-bit FLAC."""
    import soundfile as sf

    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        deep = sf.info(path).subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE")
    except (sf.LibsndfileError, RuntimeError) as e:
        raise MediaError(f"{path}: cannot decode audio ({e})") from None
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="FLAC", subtype="PCM_24" if deep else "PCM_16")
    return buf.getvalue()


def sample_members(
    record: ClipRecord, root: Path, key: str, audio_format: Literal["original", "flac"]
) -> Members:
    """The tar members of one record: its json, audio and video bytes."""
    audio_path = record.audio_path(root)
    video_path = record.video_path(root)
    for p in (audio_path, video_path):
        if p is not None and not p.is_file():
            raise MediaError(f"{p}: file not found")
    if audio_format == "flac":
        audio_ext, audio = "flac", _flac_bytes(audio_path)
    else:
        audio_ext, audio = audio_path.suffix.lstrip(".").lower() or "audio", audio_path.read_bytes()
    fields = record.model_dump(mode="json")
    fields["audio"] = f"{key}.{audio_ext}"
    members: Members = {}
    if video_path is not None:
        video_ext = video_path.suffix.lstrip(".").lower() or "video"
        fields["video"] = f"{key}.{video_ext}"
        members[video_ext] = video_path.read_bytes()
    members[audio_ext] = audio
    return {"json": json.dumps(fields, sort_keys=True).encode(), **members}


def write_shards(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    shard_size_bytes: int,
    audio_format: Literal["original", "flac"] = "original",
    progress: bool = False,
) -> ShardIndex:
    """Pack a manifest's clips into WebDataset tar shards plus `index.json`.

    Records whose files are missing or cannot be re-encoded are left out and listed in the
    index's `skipped`.
    """
    from tqdm import tqdm

    root = manifest_root(manifest)
    records = read_manifest(manifest)
    writer = ShardWriter(out_dir, shard_size_bytes)
    skipped: dict[str, str] = {}
    try:
        for n, record in enumerate(tqdm(records, desc="shard", unit="clip", disable=not progress)):
            try:
                members = sample_members(record, root, f"{n:09d}", audio_format)
            except MediaError as e:
                skipped[record.id] = str(e)
                continue
            writer.add(f"{n:09d}", members)
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    index = ShardIndex(shards, kind="clips", skipped=skipped, meta={"manifest": str(manifest)})
    index.write(out_dir)
    return index


def resolve_shards(urls_or_dir: str | os.PathLike[str] | Sequence[str]) -> list[str]:
    """Shard URLs from a folder (its index.json, else its *.tar), an index.json, one tar URL or
    a list of URLs."""
    import fsspec

    if not isinstance(urls_or_dir, str | os.PathLike):
        return [str(u) for u in urls_or_dir]
    url = os.fspath(urls_or_dir)
    if url.endswith(".tar"):
        return [url]
    index_url = url if url.endswith(".json") else url.rstrip("/") + "/" + INDEX_NAME
    base = index_url.rsplit("/", 1)[0]
    fs, path = fsspec.core.url_to_fs(index_url)
    if fs.exists(path):
        return [f"{base}/{s.name}" for s in ShardIndex.read(index_url).shards]
    fs, folder = fsspec.core.url_to_fs(url)
    tars = sorted(p for p in fs.glob(folder.rstrip("/") + "/*.tar"))
    if not tars:
        raise AudioXError(f"{url}: no shards (neither {INDEX_NAME} nor *.tar)")
    return [f"{url.rstrip('/')}/{p.rsplit('/', 1)[-1]}" for p in tars]


def iter_shard(url: str) -> Iterator[tuple[str, Members]]:
    """(key, members) of each sample in a tar, in order; raises MediaError on a broken tar
    after yielding the samples before the break."""
    import fsspec

    key: str | None = None
    members: Members = {}
    try:
        with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                folder, _, base = info.name.rpartition("/")
                stem, _, ext = base.partition(".")
                name = f"{folder}/{stem}" if folder else stem
                if name != key and key is not None:
                    yield key, members
                    members = {}
                key = name
                data = tar.extractfile(info)
                members[ext] = data.read() if data is not None else b""
    except (OSError, tarfile.TarError, EOFError) as e:
        raise MediaError(f"{url}: broken shard ({e})") from None
    if key is not None:
        yield key, members


@dataclass(frozen=True)
class Consumer:
    """One reader among `count`: rank-major, worker-minor."""

    id: int
    count: int

    @staticmethod
    def current(rank: int | None = None, world_size: int | None = None) -> Consumer:
        """This process's consumer, from the DataLoader worker and torch.distributed."""
        if rank is None or world_size is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank = dist.get_rank() if ready else 0
            world_size = dist.get_world_size() if ready else 1
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        return Consumer(rank * workers + worker_id, world_size * workers)


def split_shards(shards: Sequence[str], consumer: Consumer) -> tuple[list[tuple[int, str]], bool]:
    """The (position, url) shards this consumer reads and whether it must also stride samples.

    With at least as many shards as consumers, shards are dealt round-robin; otherwise every
    consumer reads every shard and keeps every `count`-th sample.
    """
    numbered = list(enumerate(shards))
    if len(shards) >= consumer.count:
        return numbered[consumer.id :: consumer.count], False
    return numbered, True


def shuffle_buffer(items: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Approximate shuffle through a buffer of `size` items (size <= 1: no shuffle)."""
    if size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = int(rng.integers(size))
        yield buffer[i]
        buffer[i] = item
    for i in rng.permutation(len(buffer)):
        yield buffer[i]


Position = tuple[int, ...]
"""A sample's place in its shard: (n,) or, for a repeated sample's later copies, (n, copy)."""


class ShardStream(IterableDataset):
    """Seeded, split, shuffled stream over shards; subclasses turn members into samples.

    Order is fixed by (seed, epoch) and the consumer layout. A sample that fails to decode is
    dropped; `skipped` in the next sample counts the drops since the previous one, and
    `self.skipped` / `self.bad` hold this process's tally. A clip with a video is read
    `video_repeats` times per epoch, each copy with its own draws (task, caption, crop).
    `video_groups` > 0 yields runs of that many samples all with or all without a video.
    """

    def __init__(
        self,
        urls_or_dir: str | os.PathLike[str] | Sequence[str],
        seed: int = 0,
        shuffle: bool = True,
        buffer_size: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
        video_repeats: int = 1,
        video_groups: int = 0,
    ) -> None:
        if video_repeats < 1:
            raise ValueError(f"video_repeats must be >= 1, got {video_repeats}")
        if video_groups < 0:
            raise ValueError(f"video_groups must be >= 0, got {video_groups}")
        self.urls = resolve_shards(urls_or_dir)
        self.seed = seed
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.rank = rank
        self.world_size = world_size
        self.video_repeats = video_repeats
        self.video_groups = video_groups
        self.epoch = 0
        self.skipped = 0
        self.bad: dict[str, str] = {}

    def set_epoch(self, epoch: int) -> None:
        """Shard order, buffer shuffle and per-sample randomness follow (seed, epoch)."""
        self.epoch = epoch

    def decode(self, key: str, members: Members, rng: np.random.Generator) -> dict[str, Any] | None:
        """One sample from its members, None to leave it out (filtered, not counted); raise
        MediaError when the members are unusable."""
        raise NotImplementedError

    def copies(self, members: Members) -> int:
        """How many times per epoch the stream reads this sample: `video_repeats` with a video."""
        if self.video_repeats == 1:
            return 1
        try:
            video = json.loads(members["json"]).get("video")
        except (KeyError, ValueError, AttributeError):
            return 1  # decode reports the sample
        return self.video_repeats if video else 1

    def raw_samples(self, consumer: Consumer) -> Iterator[tuple[int, Position, str, Members]]:
        """(shard position, (sample position[, copy]), key, members) this consumer owns, before
        shuffle; a repeated sample's later copies carry their copy number."""
        order = list(range(len(self.urls)))
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(order).tolist()
        mine, stride = split_shards([self.urls[i] for i in order], consumer)
        counter = 0
        for position, url in mine:
            shard = order[position]
            try:
                for n, (key, members) in enumerate(iter_shard(url)):
                    counter += 1
                    if stride and (counter - 1) % consumer.count != consumer.id:
                        continue
                    for copy in range(self.copies(members)):
                        yield shard, (n, copy) if copy else (n,), key, members
            except MediaError as e:
                self._record_bad(url, str(e))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        samples = self.decoded_samples()
        return grouped_by_video(samples, self.video_groups) if self.video_groups else samples

    def decoded_samples(self) -> Iterator[dict[str, Any]]:
        """This consumer's samples of the epoch in stream order (after the shuffle buffer)."""
        consumer = Consumer.current(self.rank, self.world_size)
        rng = np.random.default_rng((self.seed, self.epoch, consumer.id, consumer.count))
        size = self.buffer_size if self.shuffle else 0
        pending = 0
        for shard, position, key, members in shuffle_buffer(self.raw_samples(consumer), size, rng):
            try:
                sample_rng = np.random.default_rng((self.seed, self.epoch, shard, *position))
                sample = self.decode(key, members, sample_rng)
            except (AudioXError, ValueError, KeyError) as e:
                self._record_bad(key, str(e))
                pending += 1
                continue
            if sample is None:
                continue
            sample["skipped"] = pending
            pending = 0
            yield sample

    def _record_bad(self, what: str, reason: str) -> None:
        self.bad[what] = reason
        self.skipped += 1


def grouped_by_video(samples: Iterable[dict[str, Any]], size: int) -> Iterator[dict[str, Any]]:
    """Samples in runs of `size` that all carry a video or all lack one (`video_present`), so
    that batches of `size` are one or the other; the unfilled remainders come last."""
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for sample in samples:
        run = runs[bool(sample.get("video_present", False))]
        run.append(sample)
        if len(run) == size:
            yield from run
            run.clear()
    for run in runs.values():
        yield from run


def record_from(members: Members) -> ClipRecord:
    """The ClipRecord stored in a sample's json member."""
    if "json" not in members:
        raise MediaError("sample has no json member")
    return ClipRecord.model_validate_json(members["json"])


def _member(members: Members, name: str | None, key: str) -> MemoryFile | None:
    """The member a record field names (`<key>.<ext>`), None for no name."""
    if name is None:
        return None
    ext = name.split(".", 1)[1] if "." in name else name
    data = members.get(ext)
    if not data:
        raise MediaError(f"{key}.{ext}: shard member missing or empty")
    return MemoryFile(name, data)


class ShardDataset(ShardStream):
    """Iterable clip samples from shards, in the same dict format as `ClipDataset`."""

    def __init__(
        self,
        urls_or_dir: str | os.PathLike[str] | Sequence[str],
        sample_rate: int,
        channels: int,
        crop_seconds: float | None,
        video_fps: float | None = None,
        video_size: int | None = None,
        random_crop: bool = True,
        seed: int = 0,
        tasks: Sequence[str] | None = None,
        shuffle: bool = True,
        buffer_size: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
        duration_tolerance: float = 0.1,
        video_repeats: int = 1,
        video_groups: int = 0,
    ) -> None:
        super().__init__(
            urls_or_dir, seed, shuffle, buffer_size, rank, world_size, video_repeats, video_groups
        )
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

    def decode(self, key: str, members: Members, rng: np.random.Generator) -> dict[str, Any] | None:
        record = record_from(members)
        if not self.builder.accepts(record):
            return None
        try:
            audio = _member(members, record.audio, key)
            assert audio is not None
            video = _member(members, record.video, key)
            return self.builder.build(record, audio, video, rng)
        except MediaError as e:
            raise MediaError(f"{record.id}: {e}") from None
