"""Distillation task, its export and CLI on a tiny random teacher (DMD + GAN + regression)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import typer
from typer.testing import CliRunner

from audiox_turbo.cli.train import distill
from audiox_turbo.data.dataset import collate
from audiox_turbo.data.manifest import ClipRecord, write_manifest
from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.flow.sampling import student_timesteps
from audiox_turbo.pipeline import AudioXTurbo
from audiox_turbo.train.run_config import DistillConfig, TrainConfig, load_run_config
from audiox_turbo.train.student import (
    DistillTask,
    check_distill_config,
    student_shift,
)
from audiox_turbo.train.trainer import Trainer
from conftest import randomize_

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
FRAMES = 8


pytestmark = pytest.mark.usefixtures("one_thread")


class LatentClips(torch.utils.data.Dataset):
    """Four fixed latent clips (LatentShardDataset-style samples); the last one padded."""

    def __init__(self, latent_dim: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.latents = torch.randn(4, latent_dim, FRAMES, generator=g)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        valid = torch.arange(FRAMES) < (FRAMES - 3 if i == 3 else FRAMES)
        return {
            "latents": self.latents[i] * valid,
            "latent_mask": valid,
            "prompt_mask": torch.zeros(FRAMES, dtype=torch.bool),
            "text": f"clip number {i}",
            "text_present": True,
            "audio_prompt_present": False,
        }


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    """A tiny teacher with random (non-zero) denoiser weights, saved as a model directory."""
    model = AudioXTurbo.from_preset("tiny")
    randomize_(model.denoiser, seed=1, std=0.05)
    path = tmp_path_factory.mktemp("teacher") / "model"
    model.save_pretrained(path)
    return path


def train_config(steps: int, **kw) -> TrainConfig:
    base = dict(
        batch_size=2,
        warmup_steps=0,
        schedule="constant",
        max_steps=steps,
        checkpoint_every=0,
        log_every=0,
        sample_every=0,
        num_workers=0,
        ema_decay=0.99,
        ema_warmup=0,
    )
    base.update(kw)
    return TrainConfig(**base)


SETTINGS = DistillConfig(
    teacher_cfg=3.0,
    critic_updates=3,
    generator_lr=1e-3,
    critic_lr=1e-3,
    gan_weight=0.1,
    gan_critic_weight=0.1,
    regression_weight=0.5,
    gan_layers=(0, -1),
)


def make_trainer(teacher_dir: Path, run: Path, cfg: TrainConfig, settings: DistillConfig, **kw):
    teacher = AudioXTurbo.from_pretrained(teacher_dir)
    task = DistillTask(teacher, cfg, settings, **kw)
    dataset = LatentClips(teacher.config.codec.latent_dim)
    return Trainer(task, cfg, run, dataset, collate, progress=False, cpu=True), task


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "logs/metrics.jsonl").read_text().splitlines()]


def count_forwards(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.fixture(scope="module")
def distilled(teacher_dir, tmp_path_factory):
    """Six steps (critic_updates=3) with GAN and regression, samples and export at the end."""
    run = tmp_path_factory.mktemp("distill") / "run"
    cfg = train_config(6, checkpoint_every=3, sample_every=6)
    trainer, task = make_trainer(
        teacher_dir, run, cfg, SETTINGS, validation_prompts=("a tone",), validation_seconds=0.05
    )
    before = {
        name: {k: v.clone() for k, v in m.state_dict().items()}
        for name, m in task.modules().items()
    }
    student_calls = count_forwards(task.student)
    trainer.fit()
    return run, trainer, task, before, student_calls[0]


# --------------------------------------------------------------------------- settings


def test_student_shift_recovers_the_grid_shift():
    for shift in (1.0, 3.0, 0.5):
        steps = student_timesteps(4, shift).tolist()
        assert student_shift(steps) == pytest.approx(shift, rel=1e-9)
    assert student_shift([1.0]) == 1.0
    with pytest.raises(ValueError, match=r"not a .*uniform grid"):
        student_shift([1.0, 0.9, 0.2])
    with pytest.raises(ValueError, match=r"start at 1\.0"):
        student_shift([0.75, 0.5])


def test_bad_distill_settings_are_one_line_errors_naming_the_source():
    bad = DistillConfig(
        critic_updates=0,
        gan_loss="wasserstein",
        t_min=0.5,
        t_max=0.4,
        refine_steps=5,
        refine_teacher_steps=0,
        refine_weight=-1.0,
        gan_batch_fraction=0.0,
    )
    with pytest.raises(AudioXError, match=r"^run\.json: distill: .*critic_updates") as info:
        check_distill_config(bad, "run.json")
    for problem in (
        "wasserstein",
        "t_min",
        "refine_steps",
        "refine_teacher_steps",
        "refine_weight",
        "gan_batch_fraction",
    ):
        assert problem in str(info.value)
    assert "\n" not in str(info.value)
    check_distill_config(DistillConfig(), "run.json")


@pytest.mark.parametrize("name", ["tiny", "demo", "base"])
def test_shipped_distill_configs_load_and_validate(name):
    path = ROOT / "configs" / f"distill_{name}.json"
    run = load_run_config(path)
    check_distill_config(run.distill, str(path))
    assert run.model == name
    assert len(run.distill.student_steps) == 4
    assert run.train.ema_decay == 0.99


def test_student_ema_decay_is_set_only_by_the_runs_train_section(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"distill": {"ema_decay": 0.99}}))
    with pytest.raises(AudioXError, match=r"^\S*old\.json: unknown key 'distill\.ema_decay'$"):
        load_run_config(path)


# --------------------------------------------------------------------------- training


def test_losses_finite_and_all_terms_logged(distilled):
    run, *_ = distilled
    rows = records(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert all(math.isfinite(v) for v in r.values()), r
        assert {"critic/loss", "critic/fake_score", "critic/gan_critic"} <= set(r)
        assert {"grad_norm/critic", "critic/logits_real", "critic/logits_fake"} <= set(r)
    generator_rows = [r for r in rows if "generator/loss" in r]
    assert [r["step"] for r in generator_rows] == [3, 6]
    for r in generator_rows:
        assert {"generator/dmd", "generator/gan", "generator/regression"} <= set(r)
        assert r["grad_norm/generator"] > 0


def test_teacher_never_changes_while_student_and_critic_do(distilled, teacher_dir):
    _, _, task, before, _ = distilled
    after = {name: m.state_dict() for name, m in task.modules().items()}
    for name in ("teacher", "codec"):
        for k, v in before[name].items():
            assert torch.equal(after[name][k], v), f"{name}.{k} changed"
    reloaded = AudioXTurbo.from_pretrained(teacher_dir)
    for k, v in reloaded.denoiser.state_dict().items():
        assert torch.equal(task.teacher.denoiser.state_dict()[k], v)
    assert not any(p.requires_grad for p in task.teacher.parameters())
    for name in ("student", "fake_score", "discriminator"):
        changed = [k for k, v in before[name].items() if not torch.equal(after[name][k], v)]
        assert changed, f"{name} did not train"


def test_update_counts_follow_the_two_time_scale_rule(distilled):
    _, trainer, *_ = distilled
    for name, expected in (("critic", 6), ("generator", 2)):
        states = trainer.optimizers[name].optimizer.state.values()
        assert {int(s["step"]) for s in states} == {expected}
    assert trainer.ema["student"].updates == 2
    assert trainer.ema["student"].decay == 0.99  # the run's train.ema_decay, nothing else


def test_backward_simulation_runs_the_student_k_steps(distilled):
    run, _, _, _, student_calls = distilled
    rows = records(run)
    ks = [r.get("generator/student_step", r["critic/student_step"]) for r in rows]
    assert all(k in (0, 1, 2, 3) for k in ks) and len(set(ks)) > 1
    for r in rows:  # a generator step's sample is also its critic's (DMD2): one simulation
        if "generator/student_step" in r:
            assert r["critic/student_step"] == r["generator/student_step"]
    samples = 4
    assert student_calls == sum(k + 1 for k in ks) + samples


def test_regression_pairs_fill_the_pool_then_are_reused(teacher_dir, tmp_path, monkeypatch):
    """Teacher ODEs run only while the pool fills (its pairs: noise -> the ODE's endpoint)."""
    settings = DistillConfig(critic_updates=1, gan_weight=0.0, regression_weight=1.0)
    settings = dataclasses.replace(settings, regression_pool=2)
    trainer, task = make_trainer(teacher_dir, tmp_path, train_config(5), settings)
    made: list[tuple[torch.Tensor, torch.Tensor]] = []
    real_ode = task.teacher_ode

    def spy(b, noise, ctx):
        states, target = real_ode(b, noise, ctx)
        made.append((noise, target))
        return states, target

    monkeypatch.setattr(task, "teacher_ode", spy)
    inputs: list[tuple[torch.Tensor, torch.Tensor]] = []
    task.student.register_forward_hook(lambda m, args, out: inputs.append(args[:2]))
    trainer.fit()
    assert len(made) == 2 and len(task.ode_pairs) == 2
    pair_noise = [p.noise for p in task.ode_pairs]
    anchored = [(x, t) for x, t in inputs if len(x) == 4]  # batch 2 + its 2 pairs
    assert len(anchored) == 5  # every generator step
    for x, t in anchored:  # the pairs' noise at t = 1, the student's first step
        assert any(torch.equal(x[2:], noise) for noise in pair_noise)
        assert torch.equal(t[2:], torch.ones(2))
    for (noise, target), pairs in zip(made, task.ode_pairs, strict=True):
        assert torch.equal(pairs.noise, noise) and pairs.target is target
        assert not torch.allclose(target, noise)


@pytest.mark.parametrize("trajectory", [False, True])
def test_regression_anchor_pulls_the_student_output_to_the_teacher_ode(
    teacher_dir, tmp_path, trajectory
):
    """Regression alone (DMD weight 0) on one stored pair: its error falls as the student
    learns, which a detached or misaligned regression term cannot do."""
    settings = DistillConfig(
        regression_trajectory=trajectory,
        critic_updates=1,
        generator_lr=3e-3,
        dmd_weight=0.0,
        gan_weight=0.0,
        regression_weight=1.0,
        regression_pool=1,
    )
    trainer, _ = make_trainer(teacher_dir, tmp_path, train_config(12, log_every=1), settings)
    trainer.fit()
    errors = [r["generator/regression"] for r in records(tmp_path)]
    assert len(errors) == 12
    assert errors[-1] < 0.5 * errors[0], errors


def test_trajectory_regression_reads_the_teacher_ode_at_every_student_step(teacher_dir, tmp_path):
    """With `regression_trajectory` the pairs' student input is the teacher ODE's state at
    a random student step (t_k, per sample), the state the ODE passes through at t_k."""
    settings = DistillConfig(
        critic_updates=1, gan_weight=0.0, regression_weight=1.0, regression_trajectory=True
    )
    settings = dataclasses.replace(settings, regression_pool=1)
    trainer, task = make_trainer(teacher_dir, tmp_path, train_config(6), settings)
    inputs: list[tuple[torch.Tensor, torch.Tensor]] = []
    task.student.register_forward_hook(lambda m, args, out: inputs.append(args[:2]))
    trainer.fit()
    (pairs,) = task.ode_pairs
    times = task.timesteps.float()
    assert pairs.states.shape == (len(times), *pairs.target.shape)
    seen = set()
    for x, t in [(x, t) for x, t in inputs if len(x) == 4]:
        for i in range(2):
            k = int(torch.nonzero(torch.isclose(times, t[2 + i].float()))[0])
            torch.testing.assert_close(x[2 + i], pairs.states[k, i])
            seen.add(k)
    assert len(seen) >= 3, seen  # 12 draws over 4 steps
    # the states are the guided teacher ODE's from the pairs' noise, not noised targets
    for k in range(1, len(times)):
        t = float(times[k])
        straight = (1 - t) * pairs.target + t * pairs.noise
        assert not torch.allclose(pairs.states[k], straight, atol=1e-4)


def test_noised_real_input_and_bf16_teacher(teacher_dir, tmp_path):
    settings = DistillConfig(
        critic_updates=1,
        backward_simulation=False,
        teacher_bf16=True,
        gan_weight=0.0,
        gan_critic_weight=0.0,
    )
    trainer, task = make_trainer(teacher_dir, tmp_path, train_config(2), settings)
    calls = count_forwards(task.student)
    trainer.fit()
    assert calls[0] == 2  # one student forward a step: the critic reuses the generator's sample
    assert "discriminator" not in task.modules()
    assert task.teacher.denoiser.out.weight.dtype == torch.bfloat16
    rows = records(tmp_path)
    assert all(math.isfinite(r["generator/dmd"]) for r in rows)


def test_generator_schedule_spans_its_updates_and_bf16_teacher_is_a_copy(teacher_dir, tmp_path):
    teacher = AudioXTurbo.from_pretrained(teacher_dir)
    settings = DistillConfig(critic_updates=3, teacher_bf16=True, gan_weight=0.0)
    cfg = train_config(6, warmup_steps=3, schedule="cosine")
    task = DistillTask(teacher, cfg, settings)
    assert task.teacher.denoiser.out.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in teacher.denoiser.parameters())
    assert task.optimizers()["generator"].update_every == 3
    dataset = LatentClips(teacher.config.codec.latent_dim)
    trainer = Trainer(task, cfg, tmp_path, dataset, collate, progress=False, cpu=True)
    generator = trainer.schedulers["generator"].lr_lambdas[0]
    critic = trainer.schedulers["critic"].lr_lambdas[0]
    assert generator(0) == pytest.approx(1.0) and generator(2) == pytest.approx(0.0)
    assert critic(2) == pytest.approx(1.0) and critic(6) == pytest.approx(0.0)


def test_every_distillation_loss_gets_the_frame_mask(teacher_dir, tmp_path, monkeypatch):
    import audiox_turbo.train.student as student_module

    masks: dict[str, torch.Tensor] = {}
    for name in ("fake_score_loss", "distribution_matching_loss", "regression_loss"):
        real = getattr(student_module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            masks[_name] = kwargs.get("mask", args[-1])
            return _real(*args, **kwargs)

        monkeypatch.setattr(student_module, name, spy)
    settings = DistillConfig(critic_updates=1, gan_weight=0.0, regression_weight=0.5)
    trainer, _ = make_trainer(teacher_dir, tmp_path, train_config(1, batch_size=4), settings)
    trainer.fit()
    assert masks.keys() == {"fake_score_loss", "distribution_matching_loss", "regression_loss"}
    for name, mask in masks.items():  # the fake score's batch also holds the GAN-range part
        assert mask.dtype == torch.bool and mask.shape[1:] == (FRAMES,), name
        assert (mask.view(-1, 4, FRAMES) == mask[:4]).all(), name
        assert not mask.all(), f"{name} got no padded frames"


def test_samples_are_written_at_each_student_step(distilled):
    run, *_ = distilled
    names = sorted(p.name for p in (run / "samples/step-00000006").iterdir())
    assert names == [f"prompt0_step{i}.wav" for i in (1, 2, 3, 4)]


def test_export_is_a_4_step_student_without_cfg(distilled):
    run, trainer, *_ = distilled
    model = AudioXTurbo.from_pretrained(run / "model")
    assert model.trained
    sampler = model.config.sampler
    assert (sampler.kind, sampler.steps, sampler.cfg, sampler.method) == (
        "student",
        4,
        1.0,
        "student",
    )
    shadow = trainer.ema["student"].shadow
    for k, v in model.denoiser.state_dict().items():
        assert torch.equal(v, shadow[k])
    out = model(text="a tone", duration=0.1, steps=4, seed=0)
    assert out.nfe == 4
    assert out.waveforms.shape == (1, 1, 1600) and torch.isfinite(out.waveforms).all()
    assert model(text="a tone", duration=0.1, seed=0).nfe == 4


def test_resume_continues_the_same_schedule_exactly(distilled, teacher_dir, tmp_path):
    straight, *_ = distilled
    cfg = train_config(6, checkpoint_every=3, sample_every=6)
    first, _ = make_trainer(teacher_dir, tmp_path, cfg, SETTINGS)
    assert first.fit(max_steps=3).step == 3
    second, _ = make_trainer(teacher_dir, tmp_path, cfg, SETTINGS)
    second.fit(resume=True)
    resumed, reference = records(tmp_path), records(straight)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(resumed, reference, strict=True):
        losses = {k for k in b if not k.startswith("perf/")}
        assert losses == {k for k in a if not k.startswith("perf/")}
        for k in losses:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-7), (a["step"], k)


def test_resume_keeps_the_pool_of_teacher_ode_pairs(teacher_dir, tmp_path, monkeypatch):
    """A run resumed after its pool of ODE pairs filled reuses the pool (no teacher ODE) and
    logs what an uninterrupted run logs."""
    settings = dataclasses.replace(SETTINGS, critic_updates=1, regression_pool=1)
    cfg = train_config(4, checkpoint_every=2)
    straight, _ = make_trainer(teacher_dir, tmp_path / "straight", cfg, settings)
    straight.fit()
    first, _ = make_trainer(teacher_dir, tmp_path / "cut", cfg, settings)
    first.fit(max_steps=2)
    second, task = make_trainer(teacher_dir, tmp_path / "cut", cfg, settings)
    odes = count_calls(monkeypatch, task, "teacher_ode")
    second.fit(resume=True)
    assert odes == [0] and len(task.ode_pairs) == 1
    resumed, reference = records(tmp_path / "cut"), records(tmp_path / "straight")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(resumed, reference, strict=True):
        assert a["generator/regression"] == pytest.approx(b["generator/regression"], rel=1e-5)


def count_calls(monkeypatch, owner, name: str) -> list[int]:
    calls, real = [0], getattr(owner, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


# --------------------------------------------------------------------------- CLI


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(distill)
    return app


def write_clips(folder: Path) -> Path:
    records_ = []
    t = np.arange(8000) / 16000
    for i in range(4):
        wave = (0.2 * np.sin(2 * np.pi * (200 + 100 * i) * t)).astype(np.float32)
        sf.write(folder / f"c{i}.wav", wave, 16000)
        records_.append(
            ClipRecord(
                id=f"c{i}",
                audio=f"c{i}.wav",
                captions=[f"tone {i}"],
                duration=0.5,
                sample_rate=16000,
                channels=1,
            )
        )
    write_manifest(folder / "m.jsonl", records_)
    return folder / "m.jsonl"


def test_cli_distills_resumes_and_exports(teacher_dir, tmp_path):
    manifest = write_clips(tmp_path)
    config = tmp_path / "run.json"
    config.write_text(
        json.dumps(
            {
                "model": "tiny",
                "train": {
                    "batch_size": 2,
                    "crop_seconds": 0.25,
                    "num_workers": 0,
                    "ema_decay": 0.5,
                },
                "teacher": {"validation_prompts": []},
                "distill": {"critic_updates": 2},
            }
        )
    )
    args = ["--teacher", str(teacher_dir), "--config", str(config), "--data", str(manifest)]
    args += ["--out", str(tmp_path / "run"), "--cpu"]
    runner = CliRunner()
    first = runner.invoke(cli_app(), [*args, "--max-steps", "1"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli_app(), [*args, "--max-steps", "2", "--resume"])
    assert second.exit_code == 0, second.output
    rows = records(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    assert "generator/dmd" not in rows[0] and math.isfinite(rows[1]["generator/dmd"])
    saved = json.loads((tmp_path / "run/config.json").read_text())
    assert saved["model"] == str(teacher_dir) and saved["train"]["ema_decay"] == 0.5
    model = AudioXTurbo.from_pretrained(tmp_path / "run/model")
    assert model.config.sampler.kind == "student"


def test_cli_errors_name_the_file(teacher_dir, tmp_path):
    manifest = write_clips(tmp_path)
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"distill": {"gan_loss": "wasserstein"}}))
    args = ["--config", str(config), "--data", str(manifest), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli_app(), ["--teacher", str(teacher_dir), *args])
    assert isinstance(result.exception, AudioXError)
    assert "bad.json" in str(result.exception) and "wasserstein" in str(result.exception)
    config.write_text("{}")
    missing = tmp_path / "no-teacher"
    result = CliRunner().invoke(cli_app(), ["--teacher", str(missing), *args])
    assert isinstance(result.exception, ModelLoadError)
    assert "no-teacher" in str(result.exception)


def test_distillation_under_fsdp_on_two_processes_resumes_exactly_and_exports(
    teacher_dir, tmp_path
):
    """Student, fake score and discriminator sharded (FSDP1 over gloo, as on GPUs through
    Accelerate); the generator step borrows the sharded fake score. A run cut at step 3 and
    resumed logs the same losses as an uninterrupted one, and its export generates."""
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert launcher is not None
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    env.update(ACCELERATE_USE_FSDP="true", FSDP_USE_ORIG_PARAMS="true")
    env.pop("RANK", None)

    def launch(run: Path, steps: int, *extra: str) -> None:
        port = str(29700 + os.getpid() % 200)
        cmd = [launcher, "--nproc_per_node", "2", "--master_port", port, str(HERE)]
        cmd += [str(teacher_dir), str(run), str(steps), *extra]
        subprocess.run(cmd, check=True, env=env, timeout=300)

    launch(tmp_path / "full", 6)
    launch(tmp_path / "cut", 3)
    launch(tmp_path / "cut", 6, "--resume")
    full, cut = records(tmp_path / "full"), records(tmp_path / "cut")
    assert [r["step"] for r in cut] == [r["step"] for r in full] == list(range(1, 7))
    for a, b in zip(cut, full, strict=True):
        losses = [k for k in a if k.endswith("loss") or k.endswith("dmd")]
        assert losses and all(a[k] == b[k] for k in losses), (a, b)
    manifest = json.loads(
        next((tmp_path / "full/checkpoints").glob("step-*/trainer.json")).read_text()
    )
    assert manifest["sharded"] and manifest["world_size"] == 2
    out = AudioXTurbo.from_pretrained(tmp_path / "full/model")(text="a tone", duration=0.2, seed=0)
    assert out.nfe == 4 and torch.isfinite(out.waveforms).all()


def _main() -> None:
    """torchrun entry of the FSDP test: TEACHER RUN STEPS [--resume]."""
    parser = argparse.ArgumentParser()
    parser.add_argument("teacher", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = train_config(args.steps, checkpoint_every=3)
    trainer, _ = make_trainer(args.teacher, args.run, cfg, SETTINGS)
    assert trainer.sharded
    trainer.fit(resume=args.resume)


if __name__ == "__main__":
    _main()
