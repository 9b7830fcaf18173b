"""Generated waveforms as files in memory (wav, flac, mp3, or mp4 on the prompt's video) and
as a spectrogram picture (PNG) for the web page."""

from __future__ import annotations

import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from audiox_turbo.io.audio import save_audio
from audiox_turbo.mel import mel_filterbank

# magma-like colour ramp: dark purple -> red -> yellow
_RAMP = np.array(
    [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]],
    dtype=np.float64,
)


def encode_output(
    wav: torch.Tensor,
    sample_rate: int,
    fmt: str,
    video: str | None = None,
    video_start: float = 0.0,
) -> bytes:
    """The bytes of one waveform (C, S) as `fmt`; mp4 muxes it onto `video`."""
    with tempfile.TemporaryDirectory(prefix="audiox-out-") as tmp:
        path = Path(tmp) / f"out.{fmt}"
        if fmt == "mp4":
            from audiox_turbo.io.video import mux_audio_onto_video

            if video is None:
                raise ValueError("an mp4 output needs the prompt video")
            mux_audio_onto_video(video, wav, sample_rate, path, start=video_start)
        else:
            save_audio(path, wav, sample_rate)
        return path.read_bytes()


def spectrogram_png(wav: torch.Tensor, sample_rate: int, height: int = 128) -> bytes:
    """A log-mel spectrogram picture (height mel bands × ~200 px/s) of a waveform (C, S)."""
    mono = wav.float().mean(0).numpy()
    hop = max(1, sample_rate // 200)
    n_fft = 4 * hop
    padded = np.pad(mono, (n_fft // 2, n_fft // 2))
    count = 1 + max(0, (len(padded) - n_fft) // hop)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:count]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2
    mel = power @ mel_filterbank(sample_rate, n_fft, height)
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    level = np.clip((db - (db.max() - 80.0)) / 80.0, 0.0, 1.0).T[::-1]  # low bands at the bottom
    position = level * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    frac = (position - low)[..., None]
    rgb = (_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).round().astype(np.uint8)
    return png_bytes(rgb)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB image (H, W, 3) uint8 as PNG bytes."""
    height, width, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 6))
        + chunk(b"IEND", b"")
    )
