"""What a run reports on its main process: progress bar, `logs/metrics.jsonl` (one JSON line
per step), TensorBoard scalars with throughput, and validation results with sample clips
(WAV under `samples/step-XXXXXXXX/`, audio and spectrogram images in TensorBoard)."""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from audiox_turbo.atomic import atomic_file
from audiox_turbo.io.audio import save_audio
from audiox_turbo.train.checkpoint import step_dir_name
from audiox_turbo.train.run_dir import RunPaths
from audiox_turbo.train.task import AudioSample


class ThroughputWindow:
    """Running means of logged values and throughput since the last TensorBoard write."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.count = 0
        self.time = self.data_time = 0.0
        self.samples = self.frames = 0

    def add(self, seconds: float, data_seconds: float, samples: int, frames: int) -> None:
        """Account one step: its time, the part spent waiting for data, what it processed."""
        self.time += seconds
        self.data_time += data_seconds
        self.samples += samples
        self.frames += frames

    def accumulate(self, metrics: dict[str, float]) -> None:
        self.count += 1
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        """Each value's mean over the steps that logged it (a phase or term that runs on some
        steps only, e.g. the generator's, is not diluted by the others)."""
        return {k: v / self.counts[k] for k, v in self.sums.items()}

    def throughput(self) -> dict[str, float]:
        t = max(self.time, 1e-9)
        return {
            "perf/samples_per_s": self.samples / t,
            "perf/latent_frames_per_s": self.frames / t,
            "perf/step_s": self.time / max(self.count, 1),
            "perf/data_wait_fraction": self.data_time / t,
        }


class RunLog:
    """Metrics, TensorBoard and validation output of a run; call on the main process only."""

    def __init__(self, paths: RunPaths, log_every: int) -> None:
        self.paths, self.log_every = paths, log_every
        self._writer: Any = None

    def record_step(self, step: int, metrics: dict[str, float], window: ThroughputWindow) -> None:
        """Append `metrics` of `step` to metrics.jsonl; every `log_every` steps write the
        window's means and throughput to TensorBoard and reset it."""
        self.paths.metrics.parent.mkdir(parents=True, exist_ok=True)
        with self.paths.metrics.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        window.accumulate(metrics)
        if self.log_every > 0 and step % self.log_every == 0:
            writer = self.tensorboard()
            for k, v in window.means().items():
                writer.add_scalar(k, v, step)
            for k, v in window.throughput().items():
                writer.add_scalar(k, v, step)
            window.reset()

    def write_validation(
        self, step: int, results: dict[str, float], clips: list[AudioSample]
    ) -> None:
        """Scalars as `val/NAME` (TensorBoard and a metrics.jsonl line); each clip as WAV,
        TensorBoard audio and spectrogram image."""
        writer = self.tensorboard()
        for k, v in results.items():
            writer.add_scalar(f"val/{k}", v, step)
        if results:
            self.paths.metrics.parent.mkdir(parents=True, exist_ok=True)
            with self.paths.metrics.open("a") as f:
                f.write(json.dumps({"step": step, **{f"val/{k}": v for k, v in results.items()}}))
                f.write("\n")
        out = self.paths.samples / step_dir_name(step)
        for clip in clips:
            audio = clip.audio.detach().float().cpu().clamp(-1, 1)
            save_audio(out / f"{clip.name}.wav", audio, clip.sample_rate)
            writer.add_audio(f"samples/{clip.name}", audio.mean(0), step, clip.sample_rate)
            writer.add_image(f"spectrograms/{clip.name}", spectrogram_image(audio), step)
        writer.flush()

    def truncate_after(self, step: int) -> None:
        """Drop metric lines written after `step` (by a run killed after its last checkpoint)
        and lines that do not parse (a write cut short by the kill)."""
        path = self.paths.metrics
        if not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            line_step = _metric_step(line)
            if line_step is not None and line_step <= step:
                kept.append(line)
        with atomic_file(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))

    def tensorboard(self) -> Any:
        """The run's TensorBoard `SummaryWriter` on `logs/`, created on first use."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.paths.logs))
        return self._writer

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()


def progress_bar(total: int, initial: int) -> Any:
    """A tqdm bar over `total` steps starting at `initial`."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True)


def spectrogram_image(audio: torch.Tensor, n_fft: int = 512) -> torch.Tensor:
    """Log-magnitude spectrogram of (channels, samples) audio as a (3, freq, frames) image.

    Uses a simple dark-blue → yellow ramp so no plotting library is needed.
    """
    mono = audio.float().mean(0)
    n_fft = min(n_fft, max(16, 2 ** int(math.log2(max(mono.numel(), 16)))))
    spec = torch.stft(
        mono, n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True
    ).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    level = ((db - (db.max() - 80)) / 80).clamp(0, 1).flip(0)
    return torch.stack([level, level**0.5 * 0.9, 0.4 * (1 - level)]).clamp(0, 1)


def _metric_step(line: str) -> int | None:
    """The step of one metrics line, None for a blank or half-written (unparsable) line."""
    try:
        record = json.loads(line)
        return int(record.get("step", 0))
    except (AttributeError, TypeError, ValueError):
        return None
