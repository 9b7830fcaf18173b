"""A curation test corpus: world clips (audio files and videos with their audio muxed in) plus
planted defects, each with the stage-1 reason it must get."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from audiox_turbo.data.world.generate import generate_world
from audiox_turbo.data.world.media import write_mp4
from audiox_turbo.io.video import load_video_frames, mux_audio_onto_video

NOISY = ("rain", "wind", "speech", "thunder", "applause", "engine")


def _flash_scene(path: Path, lag: float, seconds: float = 4.0) -> None:
    """A grey scene whose frame flashes white at irregular times, each flash with a noise
    burst `lag` seconds later (an unambiguous A/V sync pattern)."""
    fps, rate = 25, 16000
    frames = np.full((round(seconds * fps), 64, 64, 3), 60, np.uint8)
    audio = np.zeros(round(seconds * rate), np.float32)
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, rate // 20).astype(np.float32)
    for t in (0.4, 1.3, 1.7, 2.9):
        frames[round(t * fps) : round(t * fps) + 3] = 250
        at = round((t + lag) * rate)
        audio[at : at + len(noise)] = noise[: len(audio[at : at + len(noise)])]
    silent = path.with_name(f"silent_{path.name}")
    write_mp4(silent, frames, fps)
    mux_audio_onto_video(silent, torch.from_numpy(audio)[None], rate, path)
    silent.unlink()


def build_corpus(root: Path, clips: int = 14, seed: int = 5) -> dict[str, str]:
    """Write `root/a_good` (kept) and `root/z_defects`; returns {file name: expected reason}
    ("" for the good files) and the world manifest's records under `root/world`."""
    manifest = generate_world(root / "world", clips, seed, "train", duration=4.0,
                              video_fraction=0.3, progress=False)  # fmt: skip
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    good, bad = root / "a_good", root / "z_defects"
    good.mkdir()
    bad.mkdir()
    expected: dict[str, str] = {}
    videos = [r for r in records if r["video"]]
    audios = [r for r in records if not r["video"]]
    noisy = next(r for r in audios if r["labels"]["class"] in NOISY)
    spare = [r for r in audios if r is not noisy]
    extra = spare.pop()  # not in the good set: the clipped source
    for r in [*spare, noisy]:
        shutil.copy(root / "world" / r["audio"], good / f"{r['id']}.wav")
        expected[f"{r['id']}.wav"] = ""
    for r in videos[1:]:
        wav, rate = sf.read(root / "world" / r["audio"], dtype="float32")
        mux_audio_onto_video(root / "world" / r["video"], torch.from_numpy(wav)[None], rate,
                             good / f"{r['id']}.mp4")  # fmt: skip
        expected[f"{r['id']}.mp4"] = ""
    first = spare[0]
    source = root / "world" / first["audio"]
    data = source.read_bytes()
    (bad / "truncated.wav").write_bytes(data[: len(data) // 3])
    (bad / "empty.wav").write_bytes(b"")
    (bad / "text.wav").write_text("this is not audio\n" * 50)
    sf.write(bad / "silence.wav", np.zeros(48000, np.float32), 16000)
    wav, rate = sf.read(root / "world" / extra["audio"], dtype="float32")
    sf.write(bad / "clipped.wav", np.clip(wav * 8.0, -1, 1), rate)
    wav, rate = sf.read(root / "world" / noisy["audio"], dtype="float32")
    up = soxr.resample(soxr.resample(wav, rate, 8000), 8000, rate)
    sf.write(bad / "upsampled.wav", up.astype(np.float32), rate)
    shutil.copy(source, bad / "exact_copy.wav")
    wav, rate = sf.read(source, dtype="float32")
    sf.write(bad / "shifted_copy.wav", wav[int(0.3 * rate) :], rate)
    expected.update({
        "truncated.wav": "undecodable", "empty.wav": "undecodable", "text.wav": "undecodable",
        "silence.wav": "silent", "clipped.wav": "clipped", "upsampled.wav": "band_limited",
        "exact_copy.wav": "exact_duplicate", "shifted_copy.wav": "near_duplicate",
    })  # fmt: skip
    video = videos[0]
    shutil.copy(root / "world" / video["video"], bad / "no_audio.mp4")
    _flash_scene(good / "flashes.mp4", lag=0.0)
    _flash_scene(bad / "offset.mp4", lag=0.5)
    expected["flashes.mp4"] = ""
    wav, rate = sf.read(root / "world" / video["audio"], dtype="float32")
    still = load_video_frames(root / "world" / video["video"], 25, 128, num_frames=1)
    frames = still.permute(0, 2, 3, 1).numpy().repeat(round(video["duration"] * 25), axis=0)
    write_mp4(bad / "frozen_video.mp4", frames, 25)
    frozen_silent = bad / "frozen_video.mp4"
    mux_audio_onto_video(frozen_silent, torch.from_numpy(wav)[None], rate, bad / "frozen.mp4")
    frozen_silent.unlink()
    expected.update({"no_audio.mp4": "no_audio_stream", "offset.mp4": "av_offset",
                     "frozen.mp4": "frozen_video"})  # fmt: skip
    return expected
