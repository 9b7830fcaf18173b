"""`generate --prompts FILE --out-dir DIR`: bad lines reported by number while the rest are
made, a killed job resumes without redoing finished items, and unwritable outputs are refused
before any generation (single and batch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiox_turbo.pipeline import AudioXTurbo
from test_cli import run_cli

SRC = Path(__file__).resolve().parents[1] / "src"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_bad_lines_are_reported_and_the_rest_are_made(monkeypatch, capsys, tmp_path):
    clip = tmp_path / "take.wav"
    sf.write(clip, 0.2 * np.sin(np.linspace(0, 500, 16000)), 16000)
    prompts = write_lines(
        tmp_path / "prompts.jsonl",
        [
            '{"text": "a bell", "duration": 0.5, "name": "bell"}',
            '{"text": "rain", "duration": 0.5, "seed": 42}',
            "{not json",
            '{"text": "x", "duration": -1}',
            '{"text": "x", "method": "rk4"}',
            "",
            '{"audio": "take.wav", "audio_mode": "inpaint", "span": [0.1, 0.4], "duration": 1}',
            '{"audio": "missing.wav"}',
            '{"text": "siren", "duration": 0.5, "name": "bell"}',
            '{"text": "a dog", "duration": 0.5, "format": "flac", "num_outputs": 2}',
        ],
    )
    out = tmp_path / "out"
    args = ["generate", "--prompts", str(prompts), "--out-dir", str(out), "--preset", "tiny"]
    code, stdout, err = run_cli(monkeypatch, capsys, *args, "--steps", "2", "--seed", "100")
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    for number, word in ((3, "invalid JSON"), (4, "duration"), (5, "method"), (8, "missing.wav")):
        assert any(f"prompts.jsonl:{number}: " in e and word in e for e in errors), (number, err)
    assert any("prompts.jsonl:9: name" in e for e in errors), err
    assert "Traceback" not in err
    records = {r["name"]: r for r in manifest(out)}
    assert set(records) == {"bell", "00002", "00007", "00010"}
    assert records["bell"]["seed"] == 101 and records["00002"]["seed"] == 42
    assert (out / "00010.flac").is_file() and (out / "00010_1.flac").is_file()
    for key in ("text", "seed", "file", "duration", "nfe", "seconds"):
        assert key in records["bell"]
    made, rate = sf.read(out / "bell.wav", dtype="float32")
    alone = AudioXTurbo.from_preset("tiny")(text="a bell", duration=0.5, seed=101)
    assert rate == 16000 and made.shape == (8000,)
    assert np.abs(made - alone.waveforms[0, 0].numpy()).max() < 2 / 32768
    assert "made 4 items" in stdout


def test_a_killed_job_resumes_without_redoing_finished_items(tmp_path):
    count = 12
    lines = [json.dumps({"text": f"prompt {i}", "duration": 0.5}) for i in range(count)]
    prompts = write_lines(tmp_path / "prompts.jsonl", lines)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "audiox_turbo",
        "generate",
        "--prompts",
        str(prompts),
        "--out-dir",
        str(out),
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--batch-size",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if (out / "manifest.jsonl").is_file() and len(manifest(out)) >= 2:
            break
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    first = {r["name"]: r for r in manifest(out)}
    assert 2 <= len(first) < count
    stamps = {name: (out / r["file"]).stat().st_mtime_ns for name, r in first.items()}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"resuming: {len(first)} of {count} items already made" in result.stderr
    records = manifest(out)
    names = [r["name"] for r in records]
    assert len(names) == len(set(names)) == count
    for name, stamp in stamps.items():
        assert (out / first[name]["file"]).stat().st_mtime_ns == stamp


def test_unwritable_outputs_fail_before_generation(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    prompts = write_lines(tmp_path / "p.jsonl", ['{"text": "a"}'])
    cases = [
        ["generate", "--text", "a", "--preset", "tiny", "-o", str(blocker / "x.wav")],
        ["generate", "--text", "a", "--preset", "tiny", "-o", "/proc/audiox/x.wav"],
        ["generate", "--prompts", str(prompts), "--out-dir", str(blocker / "out")],
        ["generate", "--prompts", str(prompts), "--out-dir", "/proc/audiox-out"],
    ]
    for args in cases:
        code, _, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and "cannot write" in err, err
        assert "notice" not in err  # refused before the model was even loaded
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "generate",
        "--text",
        "a",
        "--steps",
        "1",
        "--duration",
        "0.3",
        "--preset",
        "tiny",
        "-o",
        str(tmp_path / "new" / "folder" / "x.mp3"),
    )
    assert code == 0, err
    assert sf.info(str(tmp_path / "new" / "folder" / "x.mp3")).format == "MP3"
