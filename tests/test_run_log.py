"""Run logs (train/run_log.py): metrics lines, TensorBoard window, validation clips, resume."""

from __future__ import annotations

import json
import math

import soundfile as sf
import torch

from audiox_turbo.train.run_dir import RunPaths
from audiox_turbo.train.run_log import RunLog, ThroughputWindow, spectrogram_image
from audiox_turbo.train.task import AudioSample
from audiox_turbo.train.trainer import phase_losses


def test_record_step_appends_lines_and_writes_the_window_every_log_every(tmp_path):
    log, window = RunLog(RunPaths(tmp_path), log_every=2), ThroughputWindow()
    window.add(seconds=2.0, data_seconds=0.5, samples=8, frames=80)
    log.record_step(1, {"loss": 1.0}, window)
    assert window.means() == {"loss": 1.0} and not list(tmp_path.glob("logs/events.*"))
    assert window.throughput()["perf/samples_per_s"] == 4.0
    assert window.throughput()["perf/data_wait_fraction"] == 0.25
    log.record_step(2, {"loss": 3.0}, window)
    log.flush()
    assert window.count == 0 and window.sums == {} and window.samples == 0
    assert list(tmp_path.glob("logs/events.out.tfevents*"))
    lines = (tmp_path / "logs/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "loss": 1.0},
        {"step": 2, "loss": 3.0},
    ]


def test_window_means_count_only_the_steps_that_logged_a_value():
    window = ThroughputWindow()
    window.accumulate({"critic/loss": 1.0, "generator/loss": 4.0})
    window.accumulate({"critic/loss": 3.0})
    window.accumulate({"critic/loss": 5.0})
    assert window.means() == {"critic/loss": 3.0, "generator/loss": 4.0}
    window.reset()
    assert window.means() == {}


def test_truncate_after_drops_later_and_half_written_lines(tmp_path):
    paths = RunPaths(tmp_path)
    paths.logs.mkdir()
    rows = [json.dumps({"step": s, "loss": 0.5}) for s in range(1, 6)]
    paths.metrics.write_text("\n".join(rows) + '\n\n{"step": 6, "lo')
    RunLog(paths, log_every=0).truncate_after(3)
    kept = [json.loads(line)["step"] for line in paths.metrics.read_text().splitlines()]
    assert kept == [1, 2, 3]
    assert sorted(p.name for p in paths.logs.iterdir()) == ["metrics.jsonl"]
    RunLog(RunPaths(tmp_path / "none"), log_every=0).truncate_after(3)
    assert not (tmp_path / "none").exists()


def test_validation_writes_clipped_wavs_scalars_and_spectrograms(tmp_path):
    log = RunLog(RunPaths(tmp_path), log_every=0)
    t = torch.arange(4000) / 8000
    audio = 1.5 * torch.stack([torch.sin(2 * math.pi * 440 * t), torch.cos(2 * math.pi * 440 * t)])
    log.write_validation(7, {"flow_loss": 0.25}, [AudioSample("tone", audio, 8000)])
    data, rate = sf.read(tmp_path / "samples/step-00000007/tone.wav", dtype="float32")
    assert rate == 8000 and data.shape == (4000, 2)
    assert sf.info(tmp_path / "samples/step-00000007/tone.wav").subtype == "PCM_16"
    assert abs(data).max() <= 1.0 and abs(data).max() > 0.99
    assert sorted(p.name for p in (tmp_path / "samples/step-00000007").iterdir()) == ["tone.wav"]
    assert list(tmp_path.glob("logs/events.out.tfevents*"))
    lines = (tmp_path / "logs/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"step": 7, "val/flow_loss": 0.25}]


def test_progress_bar_shows_the_loss_of_every_phase():
    metrics = {"critic/loss": 0.5, "generator/loss": 2.0, "critic/fake_score": 0.4, "lr/x": 1}
    assert phase_losses(metrics) == {"critic": 0.5, "generator": 2.0}
    assert phase_losses({"loss": 1.5, "grad_norm/flow": 3.0}) == {"loss": 1.5}


def test_spectrogram_image_is_an_rgb_image_in_unit_range():
    image = spectrogram_image(torch.randn(2, 8000))
    assert image.shape == (3, 257, 8000 // 128 + 1)
    assert image.min() >= 0 and image.max() <= 1
    short = spectrogram_image(torch.randn(1, 100))
    assert short.shape[:2] == (3, 33)
