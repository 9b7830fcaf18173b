"""Tar shards and latent caches: round trips, worker/rank splitting, corrupt samples, CLI."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from audiox_turbo.data.dataset import ClipDataset, collate
from audiox_turbo.data.latents import LatentShardDataset, encode_to_shards
from audiox_turbo.data.manifest import write_manifest
from audiox_turbo.data.shards import (
    Consumer,
    ShardDataset,
    ShardIndex,
    ShardStream,
    grouped_by_video,
    resolve_shards,
    write_shards,
)
from audiox_turbo.errors import AudioXError
from test_dataset import SR, make_clip, make_corrupt_clips

DOWNSAMPLING = 400


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 clips of 1 s (16 kHz mono), every other one with video."""
    root = tmp_path_factory.mktemp("shardclips")
    records = [make_clip(root, f"s{i}", 1.0, video=i % 2 == 0) for i in range(8)]
    write_manifest(root / "manifest.jsonl", records)
    return root / "manifest.jsonl"


@pytest.fixture(scope="module")
def shard_dir(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    write_shards(manifest, out, shard_size_bytes=60_000)
    return out


def whole(ds_kind: type, source: Path, **kw: object) -> dict[str, dict]:
    """Every sample (whole clips, no shuffle) by id."""
    ds = ds_kind(source, SR, 1, None, 4.0, 8, random_crop=False, **kw)
    items = [ds[i] for i in range(len(ds))] if ds_kind is ClipDataset else list(ds)
    return {s["id"]: s for s in items}


def test_shard_round_trip(manifest: Path, shard_dir: Path) -> None:
    index = ShardIndex.read(str(shard_dir / "index.json"))
    assert index.total_samples == 8 and len(index.shards) >= 3 and not index.skipped
    assert all((shard_dir / s.name).stat().st_size == s.bytes for s in index.shards)
    assert not list(shard_dir.glob(".*"))  # no temp files left
    raw = whole(ClipDataset, manifest)
    packed = whole(ShardDataset, shard_dir, shuffle=False)
    assert packed.keys() == raw.keys()
    for clip, sample in packed.items():
        for key in ("audio", "audio_mask", "video", "video_mask"):
            assert torch.equal(sample[key], raw[clip][key]), (clip, key)
        assert sample["task"] == raw[clip]["task"]


def test_shards_are_deterministic_and_flac_round_trips(manifest: Path, tmp_path: Path) -> None:
    write_shards(manifest, tmp_path / "a", 10**9)
    write_shards(manifest, tmp_path / "b", 10**9)
    assert (tmp_path / "a/shard-000000.tar").read_bytes() == (
        tmp_path / "b/shard-000000.tar"
    ).read_bytes()
    write_shards(manifest, tmp_path / "flac", 10**9, audio_format="flac")
    raw = whole(ClipDataset, manifest)
    flac = whole(ShardDataset, tmp_path / "flac", shuffle=False)
    for clip, sample in flac.items():
        torch.testing.assert_close(sample["audio"], raw[clip]["audio"], atol=1e-4, rtol=0)


def test_shard_stream_deterministic_per_epoch(shard_dir: Path) -> None:
    def ids(seed: int, epoch: int) -> list[str]:
        ds = ShardDataset(shard_dir, SR, 1, 0.5, seed=seed, buffer_size=4)
        ds.set_epoch(epoch)
        return [(s["id"], s["crop_start"]) for s in ds]

    assert ids(1, 0) == ids(1, 0)
    assert ids(1, 0) != ids(1, 1) and ids(1, 0) != ids(2, 0)
    assert sorted(i for i, _ in ids(1, 1)) == [f"s{i}" for i in range(8)]


def test_video_clips_repeat_with_draws_of_their_own(manifest: Path, shard_dir: Path) -> None:
    def stream(repeats: int) -> list[dict]:
        tasks = ["T2A", "V2A", "TV2A"]
        return list(ShardDataset(shard_dir, SR, 1, 0.5, seed=3, tasks=tasks, video_repeats=repeats))

    samples = stream(3)
    assert Counter(s["id"] for s in samples) == {f"s{i}": 1 + 2 * (i % 2 == 0) for i in range(8)}
    draws = [(s["id"], s["task"], s["crop_start"]) for s in samples]
    assert len(set(draws)) == len(draws)  # each copy has its own task and crop
    assert set((s["id"], s["task"], s["crop_start"]) for s in stream(1)) <= set(draws)
    assert draws == [(s["id"], s["task"], s["crop_start"]) for s in stream(3)]
    with pytest.raises(ValueError, match="video_repeats"):
        ShardDataset(shard_dir, SR, 1, 0.5, video_repeats=0)
    from audiox_turbo.cli.train import _generative_dataset
    from audiox_turbo.config import from_dict
    from audiox_turbo.train.run_config import RunConfig

    run = from_dict(RunConfig, {"model": "tiny", "teacher": {"video_repeats": 2}})
    with pytest.raises(AudioXError, match=r"manifest\.jsonl: teacher\.video_repeats needs shards"):
        _generative_dataset(run, str(manifest), run.model_config())


def test_grouped_by_video_yields_whole_runs_then_the_remainders() -> None:
    flags = [True, False, False, True, False, True, True, False, True]
    samples = [{"n": i, "video_present": v} for i, v in enumerate(flags)]
    order = [s["n"] for s in grouped_by_video(samples, 2)]
    assert order == [1, 2, 0, 3, 5, 6, 4, 7, 8]


def test_group_video_makes_batches_all_with_or_all_without_video(
    manifest: Path, shard_dir: Path
) -> None:
    from torch.utils.data import DataLoader

    from audiox_turbo.cli.train import _generative_dataset
    from audiox_turbo.config import from_dict
    from audiox_turbo.train.run_config import RunConfig

    def batches(group: bool) -> list[dict]:
        settings = {"tasks": ["T2A", "V2A", "TV2A"], "group_video": group}
        run = from_dict(
            RunConfig, {"model": "tiny", "train": {"batch_size": 2}, "teacher": settings}
        )
        dataset, collate_fn = _generative_dataset(run, str(shard_dir), run.model_config())
        return list(DataLoader(dataset, batch_size=2, collate_fn=collate_fn))

    mixed, grouped = batches(False), batches(True)
    ids = lambda bs: sorted(i for b in bs for i in b["id"])  # noqa: E731
    assert ids(grouped) == ids(mixed) == [f"s{i}" for i in range(8)]
    flags = [b["video_present"].tolist() for b in grouped]
    assert any(f == [True, True] for f in flags) and any(f == [False, False] for f in flags)
    assert sum(len(set(f)) > 1 for f in flags) <= 1  # only the remainders may mix
    assert sum(len(set(b["video_present"].tolist())) > 1 for b in mixed) > 1
    run = from_dict(RunConfig, {"model": "tiny", "teacher": {"group_video": True}})
    with pytest.raises(AudioXError, match=r"manifest\.jsonl: teacher\.group_video needs shards"):
        _generative_dataset(run, str(manifest), run.model_config())


@pytest.mark.parametrize(("ranks", "workers"), [(1, 1), (2, 1), (2, 2), (3, 2), (4, 3)])
def test_split_covers_every_sample_once(shard_dir: Path, ranks: int, workers: int) -> None:
    stream = ShardStream(shard_dir, seed=4)
    seen = []
    for rank, worker in itertools.product(range(ranks), range(workers)):
        consumer = Consumer(rank * workers + worker, ranks * workers)
        seen += [json.loads(m["json"])["id"] for *_, m in stream.raw_samples(consumer)]
    assert sorted(seen) == [f"s{i}" for i in range(8)]


def test_dataloader_workers_and_ranks_without_duplicates(shard_dir: Path) -> None:
    from torch.utils.data import DataLoader

    seen = []
    for rank in range(2):
        ds = ShardDataset(shard_dir, SR, 1, 0.25, rank=rank, world_size=2, seed=1)
        loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
        seen += [i for batch in loader for i in batch["id"]]
    assert sorted(seen) == [f"s{i}" for i in range(8)]


def test_corrupt_samples_skipped_and_counted(tmp_path: Path) -> None:
    good = [make_clip(tmp_path, "good0"), make_clip(tmp_path, "good1", video=False)]
    missing = make_clip(tmp_path, "missing", video=False)
    (tmp_path / missing.audio).unlink()
    records = [good[0], *make_corrupt_clips(tmp_path), missing, good[1]]
    write_manifest(tmp_path / "m.jsonl", records)
    index = write_shards(tmp_path / "m.jsonl", tmp_path / "shards", 10**9)
    assert list(index.skipped or {}) == ["missing"] and index.total_samples == 5
    ds = ShardDataset(tmp_path / "shards", SR, 1, 1.0, 4.0, 8, shuffle=False)
    samples = list(ds)
    assert [s["id"] for s in samples] == ["good0", "good1"]
    assert [s["skipped"] for s in samples] == [0, 3] and ds.skipped == 3
    assert "truncated: 000000001.wav: no audio samples" in " ".join(ds.bad.values())


def test_unknown_record_task_is_skipped_not_fatal(tmp_path: Path) -> None:
    records = [
        make_clip(tmp_path, "odd", 1.0, video=False, labels={"task": "X2Y"}),
        make_clip(tmp_path, "fine", 1.0, video=False),
    ]
    write_manifest(tmp_path / "m.jsonl", records)
    write_shards(tmp_path / "m.jsonl", tmp_path / "shards", 10**9)
    ds = ShardDataset(tmp_path / "shards", SR, 1, 1.0, shuffle=False)
    samples = list(ds)
    assert [s["id"] for s in samples] == ["fine"] and samples[0]["skipped"] == 1
    assert ds.skipped == 1 and "unknown task 'X2Y'" in " ".join(ds.bad.values())


def test_broken_tar_keeps_samples_before_the_break(manifest: Path, tmp_path: Path) -> None:
    write_shards(manifest, tmp_path, 10**9)
    tar = tmp_path / "shard-000000.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    ds = ShardDataset(tmp_path, SR, 1, 0.5, shuffle=False)
    got = [s["id"] for s in ds]
    assert 0 < len(got) < 8 and got == [f"s{i}" for i in range(len(got))]
    assert ds.skipped >= 1 and any("broken shard" in r for r in ds.bad.values())


def test_resolve_shards_errors_and_forms(shard_dir: Path, tmp_path: Path) -> None:
    urls = resolve_shards(shard_dir)
    assert resolve_shards(f"file://{shard_dir}")[0].startswith("file://")
    assert resolve_shards(urls) == urls and resolve_shards(urls[0]) == urls[:1]
    with pytest.raises(AudioXError, match="no shards"):
        resolve_shards(tmp_path)


def pool_encoder(wave: torch.Tensor) -> torch.Tensor:
    """(B, 1, S) -> (B, 2, S / DOWNSAMPLING): frame means and frame maxima."""
    frames = wave.unfold(-1, DOWNSAMPLING, DOWNSAMPLING)[:, 0]
    return torch.stack([frames.mean(-1), frames.amax(-1)], 1)


def encode_pooled(manifest: Path, out: Path, calls: list[int] | None = None) -> ShardIndex:
    """Latent shards of `manifest` by `pool_encoder`; text features (last digit, length), video
    features the frames' mean level (4 fps)."""

    def encode_text(captions: list[str]) -> torch.Tensor:
        if calls is not None:
            calls.append(len(captions))
        return torch.tensor([[float(c[-1]), float(len(c))] for c in captions])

    def encode_video(frames: torch.Tensor) -> torch.Tensor:
        return frames.float().mean(dim=(2, 3, 4))[..., None]

    return encode_to_shards(
        manifest, out, pool_encoder, encode_text, encode_video,
        sample_rate=SR, channels=1, downsampling=DOWNSAMPLING, video_fps=4.0, video_size=8,
        batch_size=3,
    )  # fmt: skip


def test_latent_cache_round_trip(manifest: Path, tmp_path: Path) -> None:
    calls: list[int] = []
    index = encode_pooled(manifest, tmp_path, calls)
    assert index.kind == "latents" and index.total_samples == 8 and calls == [3] * 8
    raw = whole(ClipDataset, manifest)
    frames = SR // DOWNSAMPLING
    ds = LatentShardDataset(tmp_path, crop_frames=30, seed=2, tasks=["TV2A", "T2A"])
    for s in ds:
        start = round(s["crop_start"] * SR / DOWNSAMPLING)
        clip = pool_encoder(raw[s["id"]]["audio"][None])[0]
        valid = min(30, frames - start)
        assert s["latents"].shape == (2, 30) and int(s["latent_mask"].sum()) == valid
        torch.testing.assert_close(s["latents"][:, :valid], clip[:, start : start + valid])
        assert (s["latents"][:, valid:] == 0).all()
        assert s["text_features"][0] == float(s["text"][-1]) and s["text_present"]
        if s["video_present"]:
            level = raw[s["id"]]["video"].float().mean(dim=(1, 2, 3))
            first = round(start / 40 * 4)
            n = int(s["video_feature_mask"].sum())
            torch.testing.assert_close(s["video_features"][:n, 0], level[first : first + n])

    from audiox_turbo.cli.train import _generative_dataset
    from audiox_turbo.config import from_dict
    from audiox_turbo.train.run_config import RunConfig

    run = from_dict(RunConfig, {"model": "tiny", "teacher": {"video_repeats": 2}})
    repeated, _ = _generative_dataset(run, str(tmp_path), run.model_config())
    assert Counter(s["id"] for s in repeated) == {f"s{i}": 1 + (i % 2 == 0) for i in range(8)}


def test_random_crop_lengths_pad_and_mask_the_rest(manifest: Path, tmp_path: Path) -> None:
    """`min_crop_frames`: every sample keeps 10..30 of its 30 frames from one window of its clip
    (starting anywhere it fits, later than a whole crop could), zeros and a false mask after
    them, no video past them."""
    encode_pooled(manifest, tmp_path)
    raw = whole(ClipDataset, manifest)
    frames = SR // DOWNSAMPLING
    kept_lengths, starts = set(), set()
    for epoch in range(3):
        ds = LatentShardDataset(tmp_path, crop_frames=30, seed=epoch, min_crop_frames=10)
        for s in ds:
            kept = int(s["latent_mask"].sum())
            start = round(s["crop_start"] * SR / DOWNSAMPLING)
            clip = pool_encoder(raw[s["id"]]["audio"][None])[0]
            assert 10 <= kept <= 30 and s["latents"].shape == (2, 30) and start + kept <= frames
            assert bool(s["latent_mask"][:kept].all()) and (s["latents"][:, kept:] == 0).all()
            torch.testing.assert_close(s["latents"][:, :kept], clip[:, start : start + kept])
            if s["video_present"]:
                assert 0 < int(s["video_feature_mask"].sum()) <= round(kept / 40 * 4)
            kept_lengths.add(kept)
            starts.add(start)
    assert len(kept_lengths) > 5 and max(starts) > frames - 30

    from audiox_turbo.cli.train import _clip_dataset, _generative_dataset
    from audiox_turbo.config import from_dict
    from audiox_turbo.train.run_config import RunConfig

    train = {"crop_seconds": 0.3, "min_crop_seconds": 0.1}
    run = from_dict(RunConfig, {"model": "tiny", "train": train})
    ds, _ = _generative_dataset(run, str(tmp_path), run.model_config())
    lengths = [int(s["latent_mask"].sum()) for s in ds]
    shortest, longest = (run.model_config().latent_frames(t) for t in (0.1, 0.3))
    assert shortest <= min(lengths) < max(lengths) <= longest
    with pytest.raises(AudioXError, match="min_crop_seconds works on latent shards only"):
        _clip_dataset(run, str(manifest), video=True)
    with pytest.raises(ValueError, match=r"min_crop_seconds 1\.0 must lie"):
        from_dict(RunConfig, {"train": {"crop_seconds": 0.75, "min_crop_seconds": 1.0}})


def test_cli_shard_and_encode(manifest: Path, tmp_path: Path) -> None:
    from audiox_turbo.cli.data import app, parse_size

    assert parse_size("256MB") == 256 * 10**6 and parse_size("1GiB") == 2**30
    assert parse_size("1.5kb") == 1500
    for bad in ("12XB", "-1MB", "0", "MB"):
        with pytest.raises(AudioXError, match="bad size"):
            parse_size(bad)
    runner = CliRunner()
    out = runner.invoke(
        app, ["shard", str(manifest), "--out", str(tmp_path / "s"), "--shard-size", "50KB"]
    )
    assert out.exit_code == 0, out.output
    assert ShardIndex.read(str(tmp_path / "s/index.json")).total_samples == 8
    enc = runner.invoke(
        app, ["encode", str(manifest), "--preset", "tiny", "--out", str(tmp_path / "l")]
    )
    assert enc.exit_code == 0, enc.output
    sample = next(iter(LatentShardDataset(tmp_path / "l", crop_frames=None)))
    assert sample["latents"].shape == (8, 125) and sample["latent_mask"].all()
