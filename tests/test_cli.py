"""`audiox-turbo` end to end on the tiny preset, and its one-line errors (exit code 2)."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile as sf

from audiox_turbo import cli
from audiox_turbo.pipeline import AudioXTurbo


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["audiox-turbo", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def make_video(path, seconds: float = 1.0, fps: int = 25, size: int = 48) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * fps)):
            img = np.full((size, size, 3), (i * 9) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def audio_stream_seconds(path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate


def test_help_does_not_import_torch():
    code = "import sys, audiox_turbo.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_text_to_wav(monkeypatch, capsys, tmp_path):
    out = tmp_path / "a.wav"
    code, stdout, err = run_cli(
        monkeypatch,
        capsys,
        "generate",
        "--text",
        "a bell",
        "--duration",
        "0.7",
        "--preset",
        "tiny",
        "--steps",
        "2",
        "-o",
        str(out),
    )
    assert code == 0, err
    assert "untrained" in err
    wav, sr = sf.read(out)
    assert sr == 16000 and wav.shape == (11200,)
    assert "wrote" in stdout


def test_video_and_text_to_mp4(monkeypatch, capsys, tmp_path):
    video = tmp_path / "in.mp4"
    make_video(video, seconds=1.0)
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "generate",
        "--video",
        str(video),
        "--text",
        "a ball bouncing",
        "--preset",
        "tiny",
        "--steps",
        "2",
        "-o",
        str(out),
    )
    assert code == 0, err
    with av.open(str(out)) as container:
        assert container.streams.video and container.streams.audio
    assert abs(audio_stream_seconds(out) - 1.0) < 0.05


def test_audio_inpaint_and_multiple_outputs(monkeypatch, capsys, tmp_path):
    src = tmp_path / "src.wav"
    t = np.arange(16000) / 16000
    sf.write(src, 0.3 * np.sin(2 * np.pi * 330 * t), 16000)
    out = tmp_path / "fixed.flac"
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "generate",
        "--audio",
        str(src),
        "--audio-mode",
        "inpaint",
        "--span",
        "0.3,0.6",
        "--preset",
        "tiny",
        "--steps",
        "2",
        "-n",
        "2",
        "-o",
        str(out),
    )
    assert code == 0, err
    for i in range(2):
        wav, sr = sf.read(tmp_path / f"fixed_{i}.flac")
        assert sr == 16000
        assert wav.shape == (16000,)


def test_info_prints_counts(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "info", "tiny")
    assert code == 0
    assert '"name": "tiny"' in out and "denoiser:" in out and "total:" in out


def _bad_inputs(tmp_path):
    text_wav = tmp_path / "notes.wav"
    text_wav.write_text("this is not audio")
    empty_wav = tmp_path / "empty.wav"
    sf.write(empty_wav, np.zeros(0), 16000)
    corrupt_mp4 = tmp_path / "corrupt.mp4"
    corrupt_mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(200)))
    return text_wav, empty_wav, corrupt_mp4


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "corrupt_mp4",
        "text_as_wav",
        "empty_wav",
        "zero_duration",
        "too_long",
        "unknown_preset",
        "missing_weights",
        "mismatched_weights",
        "bad_span",
        "cuda_graphs_on_cpu",
    ],
)
def test_bad_input_is_one_line_exit_2(monkeypatch, capsys, tmp_path, case):
    text_wav, empty_wav, corrupt_mp4 = _bad_inputs(tmp_path)
    base = ["generate", "--preset", "tiny", "--steps", "1", "-o", str(tmp_path / "o.wav")]
    model_dir = tmp_path / "model"
    if case in ("missing_weights", "mismatched_weights"):
        AudioXTurbo.from_preset("tiny").save_pretrained(model_dir)
        if case == "missing_weights":
            (model_dir / "denoiser.safetensors").unlink()
        else:
            (model_dir / "config.json").write_text(
                (model_dir / "config.json").read_text().replace('"depth": 2', '"depth": 3')
            )
        base = ["generate", "--model", str(model_dir), "-o", str(tmp_path / "o.wav")]
    args = {
        "missing": [*base, "--audio", str(tmp_path / "nope.wav")],
        "corrupt_mp4": [*base, "--video", str(corrupt_mp4), "--duration", "1"],
        "text_as_wav": [*base, "--audio", str(text_wav), "--duration", "1"],
        "empty_wav": [*base, "--audio", str(empty_wav), "--duration", "1"],
        "zero_duration": [*base, "--text", "x", "--duration", "0"],
        "too_long": [*base, "--text", "x", "--duration", "100000"],
        "unknown_preset": ["generate", "--preset", "gigantic", "--text", "x"],
        "missing_weights": [*base, "--text", "x", "--duration", "1"],
        "mismatched_weights": [*base, "--text", "x", "--duration", "1"],
        "bad_span": [*base, "--audio", str(text_wav), "--audio-mode", "inpaint", "--span", "x"],
        "cuda_graphs_on_cpu": [*base, "--text", "x", "--device", "cpu", "--cuda-graphs"],
    }[case]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    lines = [line for line in err.strip().splitlines() if not line.startswith("notice:")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    named = {
        "missing": "nope.wav",
        "corrupt_mp4": "corrupt.mp4",
        "text_as_wav": "notes.wav",
        "empty_wav": "empty.wav",
        "missing_weights": "denoiser.safetensors",
        "mismatched_weights": "safetensors",
        "cuda_graphs_on_cpu": "CUDA graphs need a CUDA device",
    }
    if case in named:
        assert named[case] in lines[0]


def test_every_subcommand_answers_help_without_torch():
    code = (
        "import sys\n"
        "from audiox_turbo.cli import app\n"
        "from typer.testing import CliRunner\n"
        "runner = CliRunner()\n"
        "for cmd in (['data'], ['train'], ['distill'], ['eval'], ['bench'], ['benchmark'],\n"
        "            ['judge'], ['convert', 'official'], ['generate'], ['serve']):\n"
        "    result = runner.invoke(app, [*cmd, '--help'])\n"
        "    assert result.exit_code == 0, (cmd, result.output)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_still_image_prompt_and_native_sync_features(monkeypatch, capsys, tmp_path):
    image = tmp_path / "still.png"
    with av.open(str(image), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width = stream.height = 32
        stream.pix_fmt = "rgb24"
        frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "still.wav"
    base = ["generate", "--video", str(image), "--preset", "tiny", "--steps", "1"]
    code, _, err = run_cli(monkeypatch, capsys, *base, "-o", str(out))
    assert code == 0, err
    assert sf.info(out).duration == pytest.approx(10.0)
    code, _, err = run_cli(
        monkeypatch, capsys, *base, "--sync-features", str(image), "-o", str(out)
    )
    assert code == 2 and "official-variant" in err
