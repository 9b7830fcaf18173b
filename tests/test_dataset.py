"""ClipDataset: crops, masks, resampling, A/V alignment, framing, determinism, corruption."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from audiox_turbo.data.dataset import ClipDataset, collate, frame_mask
from audiox_turbo.data.manifest import ClipRecord, write_manifest
from audiox_turbo.data.validate import validate_manifest
from audiox_turbo.errors import AudioXError

SR = 16000
SRC_FPS = 10
LEVEL_STEP = 10


def write_ramp_wav(path: Path, duration: float, sr: int = SR, channels: int = 1) -> None:
    """A wav whose amplitude encodes time: x(t) = 0.9 t / duration (channel c scaled 1/(c+1))."""
    t = np.arange(round(duration * sr)) / sr
    ramp = 0.9 * t / duration
    sf.write(path, np.stack([ramp / (c + 1) for c in range(channels)], 1), sr, subtype="PCM_24")


def write_level_mp4(path: Path, duration: float, fps: int = SRC_FPS, size: int = 16) -> None:
    """An H.264 mp4 whose frame i is a flat grey of level 10 + LEVEL_STEP * i."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "0", "preset": "ultrafast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(duration * fps)):
            image = np.full((size, size, 3), 10 + LEVEL_STEP * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def make_clip(
    root: Path,
    clip_id: str,
    duration: float = 2.0,
    video: bool = True,
    sr: int = SR,
    channels: int = 1,
    **fields: object,
) -> ClipRecord:
    """Write a ramp wav (and a level mp4) under root and return its record."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    write_ramp_wav(root / "audio" / f"{clip_id}.wav", duration, sr, channels)
    if video:
        (root / "video").mkdir(exist_ok=True)
        write_level_mp4(root / "video" / f"{clip_id}.mp4", duration)
    return ClipRecord(
        id=clip_id,
        audio=f"audio/{clip_id}.wav",
        video=f"video/{clip_id}.mp4" if video else None,
        captions=[f"{clip_id} caption {k}" for k in range(3)],
        duration=duration,
        sample_rate=sr,
        channels=channels,
        **fields,  # type: ignore[arg-type]
    )


def make_corrupt_clips(root: Path) -> list[ClipRecord]:
    """A truncated wav, a zero-byte mp4 and a wav that is really an mp4 (wrong extension)."""
    truncated = make_clip(root, "truncated", video=False)
    wav = root / truncated.audio
    wav.write_bytes(wav.read_bytes()[:4000])
    empty_video = make_clip(root, "emptyvideo", labels={"task": "V2A"})
    (root / "video" / "emptyvideo.mp4").write_bytes(b"")
    wrong = make_clip(root, "wrongext", video=False)
    write_level_mp4(root / wrong.audio, 1.0)
    return [truncated, empty_video, wrong]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of 6 clips (2 s, 16 kHz mono; 4 with video) with task labels."""
    root = tmp_path_factory.mktemp("clips")
    tasks = ["TV2A", "V2A", "T2A", "inpaint", "continue", "TV2A"]
    records = [
        make_clip(root, f"clip{i}", video=t in ("TV2A", "V2A") or i == 3, labels={"task": t})
        for i, t in enumerate(tasks)
    ]
    write_manifest(root / "manifest.jsonl", records)
    return root / "manifest.jsonl"


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two good clips around three corrupt ones."""
    root = tmp_path_factory.mktemp("corrupt")
    good = [make_clip(root, "good0", labels={"task": "TV2A"}), make_clip(root, "good1")]
    write_manifest(root / "manifest.jsonl", [good[0], *make_corrupt_clips(root), good[1]])
    return root / "manifest.jsonl"


def test_shapes_and_padded_tail(clips: Path) -> None:
    ds = ClipDataset(clips, SR, 2, crop_seconds=3.0, video_fps=5.0, video_size=8, seed=1)
    s = ds[0]
    assert s["audio"].shape == (2, 3 * SR) and s["audio"].dtype == torch.float32
    assert s["audio_mask"].shape == (3 * SR,) and s["audio_mask"].sum() == 2 * SR
    assert s["audio_mask"][: 2 * SR].all() and (s["audio"][:, 2 * SR :] == 0).all()
    assert s["video"].shape == (15, 3, 8, 8) and s["video"].dtype == torch.uint8
    assert s["video_mask"].tolist() == [True] * 10 + [False] * 5
    assert (s["video"][10:] == 0).all()
    assert s["crop_start"] == 0.0 and s["task"] == "TV2A" and s["text_present"]
    assert s["text"] in ds.records[0].captions and not s["prompt_mask"].any()
    # mono -> stereo duplicates the channel
    torch.testing.assert_close(s["audio"][0], s["audio"][1])


def test_frame_mask_matches_ceil_division() -> None:
    mask = frame_mask(torch.tensor([0, 1, 512, 513, 10_000]), 512, 12)
    assert mask.shape == (5, 12)
    assert mask.sum(1).tolist() == [0, 1, 1, 2, 12]
    assert frame_mask(1024, 512, 4).tolist() == [True, True, False, False]


def test_audio_and_video_aligned_after_random_crop(clips: Path) -> None:
    ds = ClipDataset(clips, SR, 1, crop_seconds=1.0, video_fps=4.0, video_size=8, seed=3)
    starts = set()
    for epoch in range(3):
        s = ds[(epoch, 0)]
        start = s["crop_start"]
        starts.add(start)
        t = start + torch.arange(SR, dtype=torch.float64) / SR
        expected = 0.9 * t / 2.0
        # interior (soxr is not involved at the native rate): exact up to 24-bit quantisation
        torch.testing.assert_close(s["audio"][0].double(), expected, atol=1e-5, rtol=0)
        levels = s["video"].double().mean(dim=(1, 2, 3))
        source_frame = (levels - 10) / LEVEL_STEP
        frame_times = start + torch.arange(4, dtype=torch.float64) / 4.0
        # the frame shown at time t is the last source frame starting at or before t
        torch.testing.assert_close(
            source_frame, torch.floor(frame_times * SRC_FPS + 1e-6), atol=0.35, rtol=0
        )
    assert len(starts) == 3 and all(0 <= s <= 1.0 for s in starts)


def test_resampling_44k_stereo_to_16k_mono(tmp_path: Path) -> None:
    sr_in, duration, freq = 44100, 1.0, 1000.0
    t = np.arange(round(sr_in * duration)) / sr_in
    sine = 0.5 * np.sin(2 * np.pi * freq * t)
    sf.write(tmp_path / "a.wav", np.stack([sine, 0.5 * sine], 1), sr_in, subtype="FLOAT")
    record = ClipRecord(id="a", audio="a.wav", duration=duration, sample_rate=sr_in, channels=2)
    write_manifest(tmp_path / "m.jsonl", [record])
    s = ClipDataset(tmp_path / "m.jsonl", 16000, 1, crop_seconds=1.0, random_crop=False)[0]
    assert s["audio"].shape == (1, 16000) and s["audio_mask"].all()
    t16 = torch.arange(16000, dtype=torch.float64) / 16000
    expected = 0.75 * 0.5 * torch.sin(2 * torch.pi * freq * t16)
    torch.testing.assert_close(
        s["audio"][0, 200:-200].double(), expected[200:-200], atol=2e-3, rtol=0
    )


def test_deterministic_given_seed_and_epoch(clips: Path) -> None:
    def make(seed: int) -> ClipDataset:
        return ClipDataset(clips, SR, 1, 1.0, tasks=["T2A", "inpaint", "continue"], seed=seed)

    a, b, c = make(7), make(7), make(8)
    for i in range(len(a)):
        x, y = a[(2, i)], b[(2, i)]
        assert x["crop_start"] == y["crop_start"] and x["text"] == y["text"]
        assert x["task"] == y["task"] and torch.equal(x["prompt_mask"], y["prompt_mask"])
        assert torch.equal(x["audio"], y["audio"])
    a.set_epoch(2)
    assert a[1]["crop_start"] == b[(2, 1)]["crop_start"]
    crops = lambda ds, e: [ds[(e, i)]["crop_start"] for i in range(len(ds))]  # noqa: E731
    assert crops(a, 2) != crops(a, 3) and crops(a, 2) != crops(c, 2)


def test_task_framing_masks(clips: Path) -> None:
    inpaint = ClipDataset(clips, SR, 1, 2.0, tasks=["inpaint"], random_crop=False, seed=0)
    for e in range(4):
        s = inpaint[(e, 2)]
        hole = (~s["prompt_mask"]).nonzero().flatten()
        span = hole.numel() / (2 * SR)
        assert s["audio_prompt_present"] and 0.2 <= span <= 0.6 + 1e-4
        assert (hole[-1] - hole[0] + 1).item() == hole.numel()  # one contiguous span
    cont = ClipDataset(clips, SR, 1, 2.0, tasks=["continue"], seed=0)[(0, 2)]
    given = int(cont["prompt_mask"].sum())
    assert cont["prompt_mask"][:given].all() and 0.2 <= given / (2 * SR) <= 0.5 + 1e-4
    v2a = ClipDataset(clips, SR, 1, 1.0, 4.0, 8, tasks=["V2A"])
    assert len(v2a) == 4  # clips without video cannot be framed V2A
    s = v2a[0]
    assert s["video_present"] and s["video_mask"].all() and not s["text_present"]
    assert s["text"] == "" and not s["prompt_mask"].any()
    t2a = ClipDataset(clips, SR, 1, 1.0, 4.0, 8, tasks=["T2A"])[0]
    assert not t2a["video_present"] and not t2a["video_mask"].any()
    with pytest.raises(ValueError, match="unknown tasks"):
        ClipDataset(clips, SR, 1, 1.0, tasks=["X2Y"])


def test_dataloader_collate_and_resume(clips: Path) -> None:
    from itertools import islice

    from torch.utils.data import DataLoader

    from audiox_turbo.train.data_order import DataPosition, EpochChainBatchSampler

    ds = ClipDataset(clips, SR, 1, 0.5, video_fps=4.0, video_size=8, seed=5)

    def batches_from(start: DataPosition, count: int) -> list[dict]:
        sampler = EpochChainBatchSampler(len(ds), 2, 0, 1, 5, start, keyed_by_epoch=True)
        return list(islice(DataLoader(ds, batch_sampler=sampler, collate_fn=collate), count))

    batches = batches_from(DataPosition(), 3)
    b = batches[0]
    assert b["audio"].shape == (2, 1, 8000) and b["video"].shape == (2, 2, 3, 8, 8)
    assert b["text_present"].dtype == torch.bool and isinstance(b["text"], list)
    assert b["skipped"].tolist() == [0, 0] and b["index"].dtype == torch.long
    assert sorted(i for x in batches for i in x["index"].tolist()) == list(range(6))
    resumed = batches_from(DataPosition(0, 1), 2)
    assert [r["id"] for r in resumed] == [x["id"] for x in batches[1:]]
    torch.testing.assert_close(resumed[0]["audio"], batches[1]["audio"])


def test_unknown_record_task_is_skipped_not_fatal(tmp_path: Path) -> None:
    records = [
        make_clip(tmp_path, "odd", 1.0, video=False, labels={"task": "X2Y"}),
        make_clip(tmp_path, "fine", 1.0, video=False),
    ]
    write_manifest(tmp_path / "m.jsonl", records)
    ds = ClipDataset(tmp_path / "m.jsonl", SR, 1, 1.0)
    sample = ds[(0, 0)]
    assert sample["id"] == "fine" and sample["skipped"] == 1
    assert "unknown task 'X2Y'" in ds.bad_ids["odd"]


def test_collate_pads_whole_clips(tmp_path: Path) -> None:
    records = [
        make_clip(tmp_path, "a", 1.0, video=False),
        make_clip(tmp_path, "b", 0.5, video=False),
    ]
    write_manifest(tmp_path / "m.jsonl", records)
    ds = ClipDataset(tmp_path / "m.jsonl", SR, 1, crop_seconds=None)
    batch = collate([ds[0], ds[1]])
    assert batch["audio"].shape == (2, 1, SR)
    assert batch["audio_mask"].sum(1).tolist() == [SR, SR // 2]


def test_corrupt_samples_skipped_and_counted(corrupt: Path) -> None:
    ds = ClipDataset(corrupt, SR, 1, 1.0, video_fps=4.0, video_size=8, seed=0)
    ids = [ds[(0, i)]["id"] for i in range(len(ds))]
    assert ids == ["good0", "good1", "good1", "good1", "good1"]
    assert set(ds.bad_ids) == {"truncated", "emptyvideo", "wrongext"}
    assert ds[1]["skipped"] == 3 and ds.skipped >= 3
    assert "truncated.wav" in ds.bad_ids["truncated"]
    assert "emptyvideo.mp4" in ds.bad_ids["emptyvideo"]


def test_all_corrupt_raises_one_line_error(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.jsonl", make_corrupt_clips(tmp_path))
    ds = ClipDataset(tmp_path / "m.jsonl", SR, 1, 1.0, video_fps=4.0, video_size=8)
    with pytest.raises(AudioXError, match=r"m\.jsonl: 3 consecutive samples") as e:
        ds[0]
    assert "\n" not in str(e.value)


def test_validate_reports_every_bad_record(corrupt: Path) -> None:
    report = validate_manifest(corrupt)
    assert report.total == 5 and report.bad_records == 3 and not report.ok
    text = "\n".join(report.problems)
    assert f"{corrupt}:2: truncated:" in text and "truncated.wav" in text
    assert f"{corrupt}:3: emptyvideo:" in text and "empty file" in text
    assert f"{corrupt}:4: wrongext:" in text
    assert "good" not in text
    assert "5 records, 2 good, 3 bad" in report.summary()


def test_validate_checks_rate_channels_duration_and_bad_lines(tmp_path: Path) -> None:
    good = make_clip(tmp_path, "x", 1.0, video=False)
    wrong = good.model_copy(
        update={"id": "y", "sample_rate": 22050, "channels": 2, "duration": 3.0}
    )
    write_manifest(tmp_path / "m.jsonl", [good, wrong])
    with (tmp_path / "m.jsonl").open("a") as f:
        f.write('{"id": "z"}\n')
    problems = validate_manifest(tmp_path / "m.jsonl").problems
    assert len(problems) == 4
    assert "sample rate 16000 Hz, record says 22050" in problems[0]
    assert (
        "1 channels, record says 2" in problems[1] and "1.000 s, record says 3.000 s" in problems[2]
    )
    assert problems[3].startswith(f"{tmp_path / 'm.jsonl'}:3: ")


def test_cli_validate_exit_codes(corrupt: Path, clips: Path) -> None:
    from audiox_turbo.cli.data import app

    runner = CliRunner()
    bad = runner.invoke(app, ["validate", str(corrupt)])
    assert bad.exit_code == 1, bad.output
    assert bad.output.count("\n") >= 4 and "3 bad" in bad.output
    ok = runner.invoke(app, ["validate", str(clips)])
    assert ok.exit_code == 0 and "0 bad" in ok.output
