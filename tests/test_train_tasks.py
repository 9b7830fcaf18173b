"""Codec and teacher training tasks on the `tiny` preset, their losses, configs and CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audiox_turbo.config import TrainConfig, preset
from audiox_turbo.data.dataset import collate
from audiox_turbo.errors import AudioXError
from audiox_turbo.train.codec import CodecTask
from audiox_turbo.train.loop import Trainer
from audiox_turbo.train.losses import (
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    mel_distance,
    multi_resolution_stft_loss,
    si_sdr,
)
from audiox_turbo.train.run_config import (
    CodecTrainingConfig,
    TeacherTrainingConfig,
    load_run_config,
)
from audiox_turbo.train.teacher import TeacherTask, masked_mse, prompt_keep

ROOT = Path(__file__).resolve().parents[1]
TINY = preset("tiny")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run fastest (and steadiest) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ToneDataset(torch.utils.data.Dataset):
    """Two fixed tones as ClipDataset-style samples (second one padded after 3/4)."""

    def __init__(self, samples: int = 1024) -> None:
        t = torch.arange(samples) / TINY.codec.sample_rate
        self.audio = torch.stack(
            [
                0.5 * torch.sin(2 * math.pi * 440 * t),
                0.3 * torch.sin(2 * math.pi * 1000 * t) * torch.sin(2 * math.pi * 3 * t),
            ]
        )[:, None]
        self.valid = [samples, samples * 3 // 4]

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict:
        n = self.audio.shape[-1]
        mask = torch.arange(n) < self.valid[i]
        prompt = torch.zeros(n, dtype=torch.bool)
        if i == 1:
            prompt[: n // 4] = True
        return {
            "audio": self.audio[i] * mask,
            "audio_mask": mask,
            "prompt_mask": prompt,
            "text": ["a pure tone", "a warbling tone"][i],
            "text_present": True,
            "audio_prompt_present": i == 1,
            "task": ["T2A", "continue"][i],
        }


class LatentDataset(torch.utils.data.Dataset):
    """Two fixed latent clips as LatentShardDataset-style samples (second padded)."""

    def __init__(self, frames: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.latents = torch.randn(2, TINY.codec.latent_dim, frames, generator=g)
        self.frames = frames

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict:
        valid = self.frames if i == 0 else self.frames - 4
        return {
            "latents": self.latents[i] * (torch.arange(self.frames) < valid),
            "latent_mask": torch.arange(self.frames) < valid,
            "prompt_mask": torch.zeros(self.frames, dtype=torch.bool),
            "text": ["a dog barks", "rain on a roof"][i],
            "text_present": True,
            "audio_prompt_present": False,
        }


def overfit_config(steps: int, lr: float, **kw) -> TrainConfig:
    base = dict(
        batch_size=2,
        lr=lr,
        warmup_steps=0,
        schedule="constant",
        max_steps=steps,
        checkpoint_every=0,
        log_every=0,
        sample_every=0,
        num_workers=0,
        grad_clip=1.0,
        ema_decay=0.9,
        ema_warmup=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def losses_of(run: Path, key: str) -> list[float]:
    return [
        json.loads(line)[key] for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()
    ]


def codec_settings(**kw) -> CodecTrainingConfig:
    base = dict(
        stft_fft_sizes=(256, 128, 64, 32),
        stft_log_eps=1e-2,
        adversarial_start=10**9,
        discriminator_filters=4,
        discriminator_fft_sizes=(128, 64),
        validation_clips=2,
    )
    base.update(kw)
    return CodecTrainingConfig(**base)


def no_export(task):
    task.export = lambda directory, ctx: None
    return task


# --------------------------------------------------------------------------- losses


def test_si_sdr_matches_closed_form_and_is_scale_invariant():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 1, 4000, generator=g, dtype=torch.float64)
    target -= target.mean()
    noise = torch.randn(1, 1, 4000, generator=g, dtype=torch.float64)
    noise -= noise.mean()
    noise -= (noise * target).sum() / (target * target).sum() * target
    noise *= 0.1 * target.norm() / noise.norm()
    expected = 10 * math.log10(1 / 0.01)
    assert float(si_sdr(target + noise, target)) == pytest.approx(expected, abs=1e-3)
    assert float(si_sdr(3 * (target + noise), target)) == pytest.approx(expected, abs=1e-3)


def test_reconstruction_losses_vanish_on_identical_signals():
    wav = torch.randn(2, 1, 2048) * 0.3
    assert float(multi_resolution_stft_loss(wav, wav, (512, 128))) == pytest.approx(0, abs=1e-5)
    assert float(mel_distance(wav, wav, 16000)) == pytest.approx(0, abs=1e-6)
    assert float(multi_resolution_stft_loss(0.5 * wav, wav, (512, 128))) > 0.5
    with pytest.raises(ValueError, match="shorter than every FFT"):
        multi_resolution_stft_loss(wav[..., :16], wav[..., :16], (512,))


def test_adversarial_losses_closed_form():
    real, fake = [torch.tensor([2.0, 0.5])], [torch.tensor([-2.0, 0.0])]
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx(0.25 + 0.5)
    assert float(hinge_generator_loss(fake)) == pytest.approx((3 + 1) / 2)
    feats = [[torch.ones(3), 2 * torch.ones(2)]]
    assert float(feature_matching_loss(feats, feats)) == 0.0
    assert float(feature_matching_loss(feats, [[torch.zeros(3), torch.zeros(2)]])) == 1.0


def test_masked_mse_ignores_padded_frames():
    pred = torch.zeros(2, 3, 4)
    target = torch.ones(2, 3, 4)
    target[1, :, 2:] = 100.0
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    assert float(masked_mse(pred, target, mask)) == pytest.approx(1.0)


def test_prompt_keep_marks_whole_given_frames():
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, :5] = True
    keep = prompt_keep(mask, 4, 3)
    assert keep.shape == (1, 1, 3)
    assert keep.flatten().tolist() == [1.0, 0.0, 0.0]


# --------------------------------------------------------------------------- tasks


def test_codec_one_batch_overfits(tmp_path):
    task = no_export(CodecTask(TINY, codec_settings()))
    cfg = overfit_config(60, 1e-2)
    Trainer(task, cfg, tmp_path, ToneDataset(), collate, progress=False, cpu=True).fit()
    losses = losses_of(tmp_path, "codec/loss")
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first / 2, (first, last)


@pytest.mark.slow
def test_codec_one_batch_overfits_long(tmp_path):
    """1500 steps: the tiny codec's multi-resolution STFT loss plateaus near a 5x drop."""
    task = no_export(CodecTask(TINY, codec_settings()))
    cfg = overfit_config(1500, 1e-2, schedule="cosine")
    Trainer(task, cfg, tmp_path, ToneDataset(), collate, progress=False, cpu=True).fit()
    losses = losses_of(tmp_path, "codec/loss")
    first, last = sum(losses[:5]) / 5, sum(losses[-20:]) / 20
    assert last < first / 4, (first, last)


def test_codec_adversarial_phase_validation_and_samples(tmp_path):
    dataset = ToneDataset()
    task = no_export(
        CodecTask(TINY, codec_settings(adversarial_start=2), collate([dataset[0], dataset[1]]))
    )
    cfg = overfit_config(3, 1e-3, sample_every=3, log_every=1)
    Trainer(task, cfg, tmp_path, dataset, collate, progress=False, cpu=True).fit()
    records = [
        json.loads(line) for line in (tmp_path / "logs/metrics.jsonl").read_text().splitlines()
    ]
    assert "discriminator/loss" not in records[1]
    assert {"discriminator/loss", "codec/adversarial", "codec/feature_matching"} <= set(records[2])
    assert all(math.isfinite(v) for v in records[2].values())
    clips = sorted(p.name for p in (tmp_path / "samples/step-00000003").iterdir())
    assert clips == ["clip0_real.wav", "clip0_recon.wav", "clip1_real.wav", "clip1_recon.wav"]


def teacher_overfit(run: Path, steps: int) -> tuple[float, float]:
    """Fixed-t, fixed-noise validation flow loss before and after `steps` on one batch."""
    dataset = LatentDataset()
    cfg = overfit_config(steps, 3e-3, schedule="cosine", timestep_sampler="uniform")
    settings = TeacherTrainingConfig(validation_prompts=())
    task = no_export(TeacherTask(TINY, cfg, settings, validation_batch=collate(list(dataset))))
    trainer = Trainer(task, cfg, run, dataset, collate, progress=False, cpu=True)
    before = trainer.validate_and_sample()["flow_loss"]
    trainer.fit()
    return before, trainer.validate_and_sample()["flow_loss"]


def test_teacher_one_batch_overfits(tmp_path):
    before, after = teacher_overfit(tmp_path, 150)
    assert after < before / 1.5, (before, after)


@pytest.mark.slow
def test_teacher_one_batch_overfits_tenfold(tmp_path):
    before, after = teacher_overfit(tmp_path, 800)
    assert after < before / 10, (before, after)


def test_teacher_trains_from_waveforms_with_prompts_and_generates(tmp_path):
    dataset = ToneDataset(samples=2048)
    settings = TeacherTrainingConfig(
        validation_prompts=("a tone",), validation_seconds=0.25, validation_steps=2
    )
    task = TeacherTask(TINY, overfit_config(0, 1e-3), settings, validation_batch=None)
    cfg = overfit_config(2, 1e-3, sample_every=2)
    Trainer(task, cfg, tmp_path, dataset, collate, progress=False, cpu=True).fit()
    losses = losses_of(tmp_path, "loss")
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert (tmp_path / "samples/step-00000002/prompt0.wav").is_file()
    from audiox_turbo.pipeline import AudioXTurbo

    model = AudioXTurbo.from_pretrained(tmp_path / "model")
    assert model.config.trained
    exported = model.denoiser.state_dict()
    for k, v in task.flow.denoiser.state_dict().items():
        assert exported[k].shape == v.shape


# --------------------------------------------------------------------------- configs and CLI


@pytest.mark.parametrize("name", ["tiny", "demo", "base"])
def test_shipped_configs_load(name):
    run = load_run_config(ROOT / "configs" / f"{name}.json")
    assert run.model == name
    assert run.model_config().name == name


def test_bad_run_config_is_one_line_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "tiny", "train": {"learning_rate": 1}}))
    with pytest.raises(AudioXError, match=r"bad\.json.*learning_rate"):
        load_run_config(bad)
    with pytest.raises(AudioXError, match=r"missing\.json"):
        load_run_config(tmp_path / "missing.json")


def test_cli_module_imports_without_torch():
    code = "import sys, audiox_turbo.train.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_cli_teacher_runs_resumes_and_exports(tmp_path):
    import numpy as np
    import soundfile as sf
    from typer.testing import CliRunner

    from audiox_turbo.data.manifest import ClipRecord, write_manifest
    from audiox_turbo.train.cli import app

    records = []
    for i in range(4):
        sf.write(tmp_path / f"c{i}.wav", np.full(16000, 0.1 * i, np.float32), 16000)
        records.append(
            ClipRecord(
                id=f"c{i}",
                audio=f"c{i}.wav",
                captions=[f"clip {i}"],
                duration=1.0,
                sample_rate=16000,
                channels=1,
            )
        )
    write_manifest(tmp_path / "m.jsonl", records)
    config = tmp_path / "run.json"
    config.write_text(
        json.dumps(
            {
                "model": "tiny",
                "train": {"batch_size": 2, "crop_seconds": 0.5, "num_workers": 0},
                "teacher": {"validation_prompts": [], "validation_batch": 0},
            }
        )
    )
    args = ["teacher", "--config", str(config), "--data", str(tmp_path / "m.jsonl")]
    args += ["--out", str(tmp_path / "run")]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--max-steps", "1"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [*args, "--max-steps", "2", "--resume"])
    assert second.exit_code == 0, second.output
    assert [r for r in losses_of(tmp_path / "run", "step")] == [1, 2]
    assert (tmp_path / "run/model/denoiser.safetensors").is_file()
    assert json.loads((tmp_path / "run/config.json").read_text())["model"] == "tiny"
