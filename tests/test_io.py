"""Media I/O: audio decode/resample/save round trips, video frame timing, muxing, error paths."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from audiox_turbo.errors import MediaError
from audiox_turbo.io import (
    load_audio,
    load_video_frames,
    mux_audio_onto_video,
    peak_normalize,
    resample,
    save_audio,
    video_duration,
)


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / rate)[spectrum.argmax()])


def _frame_colour(k: int) -> tuple[int, int, int]:
    """A colour that encodes frame index k (< 256) robustly through H.264."""
    return (16 * (k % 16) + 8, 16 * (k // 16) + 8, 128)


def _frame_index(frame: torch.Tensor) -> int:
    r, g = frame[0].float().mean().item(), frame[1].float().mean().item()
    return round((r - 8) / 16) + 16 * round((g - 8) / 16)


def _write_video(path: Path, fps: int, frames: int, size: tuple[int, int] = (48, 32)) -> Path:
    """An H.264 mp4 whose frame k is filled with `_frame_colour(k)`."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"g": "12"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for k in range(frames):
            image = np.empty((size[1], size[0], 3), np.uint8)
            image[:] = _frame_colour(k)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _write_aac(path: Path, wav: np.ndarray, rate: int) -> Path:
    """An audio-only mp4/m4a with `wav` (C,S) encoded as AAC."""
    layout = "mono" if wav.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wav), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    two_tones = np.concatenate([_tone(440, 1.0, 16000), _tone(880, 1.0, 16000)])[None]
    return {
        "v30": _write_video(root / "v30.mp4", 30, 60),
        "v25": _write_video(root / "v25.mp4", 25, 50),
        "m4a": _write_aac(root / "tones.m4a", two_tones, 16000),
    }


def _assert_one_line_naming(err: pytest.ExceptionInfo[MediaError], path: Path) -> None:
    message = str(err.value)
    assert path.name in message
    assert "\n" not in message


# --- audio -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoding", "tol"),
    [
        ("a.wav", "pcm16", 1.0 / 32768 + 1e-7),
        ("a.flac", "pcm16", 1.0 / 32768 + 1e-7),
        ("b.flac", "pcm24", 1.0 / 2**23 + 1e-7),
        ("c.wav", "float", 0.0),
    ],
)
def test_save_load_round_trip(tmp_path: Path, name: str, encoding: str, tol: float) -> None:
    wav = torch.from_numpy(np.stack([_tone(440, 0.25, 8000), _tone(660, 0.25, 8000, 0.9)]))
    out = save_audio(tmp_path / "sub" / name, wav, 8000, encoding=encoding)
    loaded, rate = load_audio(out)
    assert rate == 8000
    assert loaded.dtype == torch.float32
    assert loaded.shape == wav.shape
    assert (loaded - wav).abs().max().item() <= tol
    assert sorted(p.name for p in out.parent.iterdir()) == [name]  # no temp file left


def test_save_clips_pcm_and_rejects_bad_requests(tmp_path: Path) -> None:
    out = save_audio(tmp_path / "loud.wav", torch.tensor([[2.0, -3.0, 0.5]]), 8000)
    loaded, _ = load_audio(out)
    assert loaded[0, :2].tolist() == pytest.approx([32767 / 32768, -1.0])
    for path, kwargs in [
        (tmp_path / "x.ogg", {}),
        (tmp_path / "x.flac", {"encoding": "float"}),
        (tmp_path / "x.wav", {"encoding": "pcm8"}),
    ]:
        with pytest.raises(MediaError) as err:
            save_audio(path, torch.zeros(1, 10), 8000, **kwargs)
        _assert_one_line_naming(err, path)
    with pytest.raises(MediaError) as err:
        save_audio(tmp_path / "nan.wav", torch.tensor([[0.0, float("nan")]]), 8000)
    _assert_one_line_naming(err, tmp_path / "nan.wav")
    assert not list(tmp_path.glob(".*"))


def test_save_mp3_round_trips_approximately(tmp_path: Path) -> None:
    tone = 0.5 * torch.sin(torch.linspace(0, 2 * torch.pi * 440, 16000)).unsqueeze(0)
    out = save_audio(tmp_path / "tone.mp3", tone, 16000)
    assert sf.info(str(out)).format == "MP3"
    loaded, rate = load_audio(out)
    assert rate == 16000 and abs(loaded.abs().max().item() - 0.5) < 0.1


def test_load_window_and_channel_conversion(tmp_path: Path) -> None:
    rate = 8000
    stereo = np.stack([np.linspace(-1, 1, rate, dtype=np.float32), np.full(rate, 0.5, np.float32)])
    path = tmp_path / "s.wav"
    sf.write(path, stereo.T, rate, subtype="FLOAT")
    window, _ = load_audio(path, start=0.25, duration=0.5)
    np.testing.assert_array_equal(window.numpy(), stereo[:, 2000:6000])
    mono, _ = load_audio(path, channels=1)
    np.testing.assert_allclose(mono.numpy(), stereo.mean(axis=0, keepdims=True), atol=1e-7)
    tail, _ = load_audio(path, start=0.9, duration=5.0)
    assert tail.shape == (2, 800)
    sf.write(tmp_path / "m.wav", stereo[0], rate, subtype="FLOAT")
    dup, _ = load_audio(tmp_path / "m.wav", channels=2)
    np.testing.assert_array_equal(dup[0].numpy(), dup[1].numpy())
    assert dup.shape == (2, rate)


def test_resample_length_and_frequency() -> None:
    x = torch.from_numpy(np.stack([_tone(1000, 1.0, 44100), _tone(3000, 1.0, 44100)]))
    y = resample(x, 44100, 16000)
    assert y.shape == (2, 16000)
    assert y.dtype == torch.float32
    assert _dominant_frequency(y[0].numpy(), 16000) == pytest.approx(1000, abs=2)
    assert _dominant_frequency(y[1].numpy(), 16000) == pytest.approx(3000, abs=2)
    batched = resample(x[None], 44100, 16000)
    torch.testing.assert_close(batched[0], y)
    assert resample(x, 16000, 16000) is x


def test_load_audio_resamples(tmp_path: Path) -> None:
    path = tmp_path / "t.flac"
    sf.write(path, _tone(1000, 0.5, 44100), 44100)
    wav, rate = load_audio(path, sample_rate=16000, channels=1)
    assert rate == 16000
    assert wav.shape == (1, 8000)
    assert _dominant_frequency(wav[0].numpy(), 16000) == pytest.approx(1000, abs=4)


def test_peak_normalize() -> None:
    x = torch.tensor([[[0.1, -0.25]], [[0.0, 0.0]]])
    y = peak_normalize(x)
    torch.testing.assert_close(y[0], torch.tensor([[0.4, -1.0]]))
    assert torch.equal(y[1], torch.zeros(1, 2))
    torch.testing.assert_close(peak_normalize(x[0], peak=0.5), torch.tensor([[0.2, -0.5]]))


def test_pyav_decodes_aac_with_window(media: dict[str, Path]) -> None:
    whole, rate = load_audio(media["m4a"])
    assert rate == 16000
    assert whole.shape[0] == 1
    assert abs(whole.shape[1] - 32000) <= 1024
    late, _ = load_audio(media["m4a"], start=1.25, duration=0.5)
    assert late.shape == (1, 8000)
    assert _dominant_frequency(late[0].numpy(), 16000) == pytest.approx(880, abs=8)
    early, _ = load_audio(media["m4a"], start=0.25, duration=0.5, sample_rate=8000, channels=2)
    assert early.shape == (2, 4000)
    assert _dominant_frequency(early[0].numpy(), 8000) == pytest.approx(440, abs=8)


def test_pyav_decodes_mp3(tmp_path: Path) -> None:
    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without MP3 support")
    path = tmp_path / "t.mp3"
    sf.write(path, _tone(500, 1.0, 22050), 22050, format="MP3")
    wav, rate = load_audio(path, sample_rate=16000)
    assert rate == 16000
    assert abs(wav.shape[1] - 16000) <= 1200
    assert _dominant_frequency(wav[0].numpy(), 16000) == pytest.approx(500, abs=6)


def test_audio_error_paths(tmp_path: Path, media: dict[str, Path]) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    text_wav = tmp_path / "notes.wav"
    text_wav.write_text("this is not audio\n" * 20)
    text_mp3 = tmp_path / "notes.mp3"
    text_mp3.write_text("this is not audio either\n" * 20)
    junk = tmp_path / "blob.xyz"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    nan_wav = tmp_path / "nan.wav"
    sf.write(nan_wav, np.array([0.0, np.nan, np.inf], np.float32), 8000, subtype="FLOAT")
    zero_len = tmp_path / "zero.wav"
    sf.write(zero_len, np.zeros(0, np.float32), 8000)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(800, np.float32), 8000)
    cases = [
        (tmp_path / "missing.wav", {}),
        (empty, {}),
        (text_wav, {}),
        (text_mp3, {}),
        (junk, {}),
        (nan_wav, {}),
        (zero_len, {}),
        (short, {"start": 1.0}),
        (short, {"start": -1.0}),
        (media["v30"], {}),  # video without an audio stream
    ]
    for path, kwargs in cases:
        with pytest.raises(MediaError) as err:
            load_audio(path, **kwargs)
        _assert_one_line_naming(err, path)


# --- video -------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "src_fps"), [("v30", 30), ("v25", 25)])
def test_frames_sampled_at_real_timestamps(
    media: dict[str, Path], source: str, src_fps: int
) -> None:
    path = media[source]
    assert video_duration(path) == pytest.approx(2.0)
    frames = load_video_frames(path, fps=4, size=8)
    assert frames.shape == (8, 3, 8, 8)
    assert frames.dtype == torch.uint8
    assert [_frame_index(f) for f in frames] == [int(k / 4 * src_fps) for k in range(8)]
    window = load_video_frames(path, fps=10, size=6, start=0.55, duration=1.0)
    assert window.shape == (10, 3, 6, 6)
    expected = [int((0.55 + k / 10) * src_fps + 1e-9) for k in range(10)]
    assert [_frame_index(f) for f in window] == expected


def test_frames_padded_with_last_frame_and_trimmed(media: dict[str, Path]) -> None:
    padded = load_video_frames(media["v30"], fps=4, size=8, start=1.5, num_frames=6)
    assert [_frame_index(f) for f in padded] == [45, 52, 59, 59, 59, 59]
    trimmed = load_video_frames(media["v30"], fps=4, size=8, duration=2.0, num_frames=3)
    assert [_frame_index(f) for f in trimmed] == [0, 7, 15]


def test_resize_distorts_to_square(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "wide.mp4", 5, 3, size=(64, 16))
    frames = load_video_frames(path, fps=5, size=12)
    assert frames.shape == (3, 3, 12, 12)


@pytest.mark.parametrize(
    ("suffix", "codec", "pix_fmt"), [(".png", "png", "rgb24"), (".jpg", "mjpeg", "yuvj420p")]
)
def test_still_image_becomes_still_video(
    tmp_path: Path, suffix: str, codec: str, pix_fmt: str
) -> None:
    path = tmp_path / f"still{suffix}"
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = 40, 20, pix_fmt
        image = np.empty((20, 40, 3), np.uint8)
        image[:] = (200, 40, 90)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    frames = load_video_frames(path, fps=5, size=16, duration=1.0)
    assert frames.shape == (5, 3, 16, 16)
    assert torch.equal(frames[0], frames[-1])
    colour = frames[0].float().mean(dim=(1, 2))
    torch.testing.assert_close(colour, torch.tensor([200.0, 40.0, 90.0]), atol=4, rtol=0)
    assert load_video_frames(path, fps=5, size=16).shape == (1, 3, 16, 16)
    assert video_duration(path) == 0.0


def test_video_error_paths(tmp_path: Path, media: dict[str, Path]) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(1).bytes(2048))
    for path in (tmp_path / "missing.mp4", empty, corrupt, media["m4a"]):
        with pytest.raises(MediaError) as err:
            load_video_frames(path, fps=4, size=8)
        _assert_one_line_naming(err, path)
        with pytest.raises(MediaError) as err:
            video_duration(path)
        _assert_one_line_naming(err, path)
    with pytest.raises(MediaError) as err:
        load_video_frames(media["v30"], fps=0, size=8)
    _assert_one_line_naming(err, media["v30"])


# --- mux ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2])
def test_mux_audio_onto_video(tmp_path: Path, media: dict[str, Path], channels: int) -> None:
    rate = 16000
    samples = 3 * rate  # longer than the 2 s video: kept whole
    wav = torch.from_numpy(np.stack([_tone(440, 3.0, rate)] * channels))
    out = mux_audio_onto_video(media["v30"], wav, rate, tmp_path / "out" / "clip.mp4")
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.mp4"]
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert video.frames == 60
        assert video.average_rate == 30
        assert audio.codec_context.name == "aac"
        assert audio.channels == channels
        assert audio.sample_rate == rate
        assert float(audio.duration * audio.time_base) == pytest.approx(3.0, abs=1e-3)
    decoded, decoded_rate = load_audio(out)
    assert decoded_rate == rate
    assert decoded.shape[0] == channels
    assert samples <= decoded.shape[1] <= samples + 1024
    assert _dominant_frequency(decoded[0, :samples].numpy(), rate) == pytest.approx(440, abs=2)
    frames = load_video_frames(out, fps=4, size=8)
    assert [_frame_index(f) for f in frames] == [0, 7, 15, 22, 30, 37, 45, 52]


def test_mux_from_a_start_time_drops_the_earlier_video(
    tmp_path: Path, media: dict[str, Path]
) -> None:
    wav = torch.from_numpy(_tone(440, 1.0, 16000)[None])
    out = mux_audio_onto_video(media["v30"], wav, 16000, tmp_path / "late.mp4", start=1.0)
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 30
    frames = load_video_frames(out, fps=4, size=8)
    assert [_frame_index(f) for f in frames] == [30, 37, 45, 52]


def test_mux_errors(tmp_path: Path, media: dict[str, Path]) -> None:
    wav = torch.zeros(1, 1600)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    for path in (tmp_path / "missing.mp4", empty, media["m4a"]):
        with pytest.raises(MediaError) as err:
            mux_audio_onto_video(path, wav, 16000, tmp_path / "o.mp4")
        _assert_one_line_naming(err, path)
    with pytest.raises(MediaError) as err:
        mux_audio_onto_video(media["v30"], wav, 12345, tmp_path / "odd_rate.mp4")
    _assert_one_line_naming(err, tmp_path / "odd_rate.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


def test_pyav_window_counts_from_the_container_start(tmp_path):
    sr = 48000
    t = np.arange(2 * sr) / sr
    tone = np.where(t < 1.0, np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 880 * t))
    path = tmp_path / "offset.ts"
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("mp2", rate=sr, layout="mono")
        for i in range(0, len(tone), 1152):
            chunk = (tone[i : i + 1152] * 0.5).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sr, i + 3 * sr  # starts 3 s into the stream
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(path)) as container:
        assert (container.start_time or 0) > 0  # the case this test is about
    wav, rate = load_audio(path, start=1.2, duration=0.5)
    spectrum = np.abs(np.fft.rfft(wav[0].numpy()))
    assert rate == sr and abs(np.argmax(spectrum) * sr / wav.shape[-1] - 880) < 10
