"""The training engine on a toy task: accumulation, schedules per optimiser, EMA updates,
checkpoints, resume, DDP and FSDP on gloo. Also a script (`python tests/test_trainer.py RUN_DIR
--max-steps N`) so the kill/resume and two-process tests launch it as users launch training.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from audiox_turbo.errors import AudioXError
from audiox_turbo.train import checkpoint as ckpt
from audiox_turbo.train.run_config import TrainConfig
from audiox_turbo.train.schedule import lr_factor
from audiox_turbo.train.task import OptimizerSpec, StepContext, Task
from audiox_turbo.train.trainer import Trainer

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]


class ToyDataset(torch.utils.data.Dataset):
    """Fixed regression pairs; items carry their index so tests can see who got what."""

    def __init__(self, size: int = 64) -> None:
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(size, 6, generator=g)
        self.y = self.x @ torch.randn(6, 3, generator=g) + 0.1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i], "index": torch.tensor(i)}


class ToyTask(Task):
    """A dropout MLP regressor; the loss uses ctx.generator noise to exercise RNG restore."""

    def __init__(self, sleep: float = 0.0) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.1), nn.Tanh(), nn.Linear(16, 3))
        self.sleep = sleep
        self.noise = 0.01
        self.seen: list[int] = []

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return {"net": OptimizerSpec(("net",))}

    def ema_modules(self) -> list[str]:
        return ["net"]

    def batch_stats(self, batch: dict[str, torch.Tensor]) -> tuple[int, int]:
        return len(batch["x"]), 0

    def training_step(self, batch, phase: str, ctx: StepContext) -> dict[str, torch.Tensor]:
        if self.sleep:
            time.sleep(self.sleep)
        self.seen.extend(batch["index"].tolist())
        noise = self.noise * torch.randn(batch["y"].shape, generator=ctx.generator)
        pred = ctx.modules["net"](batch["x"].to(ctx.device))
        return {"loss": ((pred - batch["y"] - noise) ** 2).mean()}


class SplitToyTask(Task):
    """The toy regressor as two networks (`body`, `head`) under one optimiser, with no dropout
    or noise, so that runs on different process counts see the same data. Its export writes
    the (EMA) weights and their predictions on five inputs."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.head = nn.Linear(16, 3)

    def modules(self) -> dict[str, nn.Module]:
        return {"body": self.body, "head": self.head}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return {"net": OptimizerSpec(("body", "head"))}

    def ema_modules(self) -> list[str]:
        return ["body", "head"]

    def training_step(self, batch, phase: str, ctx: StepContext) -> dict[str, torch.Tensor]:
        pred = ctx.modules["head"](ctx.modules["body"](batch["x"].to(ctx.device)))
        return {"loss": ((pred - batch["y"].to(ctx.device)) ** 2).mean()}

    def export(self, directory: Path, ctx: StepContext) -> None:
        body, head = ctx.unwrapped("body"), ctx.unwrapped("head")
        tensors = {f"body.{k}": v for k, v in body.state_dict().items()}
        tensors |= {f"head.{k}": v for k, v in head.state_dict().items()}
        tensors["prediction"] = head(body(ToyDataset().x[:5].to(ctx.device)))
        directory.mkdir(parents=True, exist_ok=True)
        ckpt.save_tensors(directory / "export.safetensors", tensors)


def toy_config(**overrides) -> TrainConfig:
    base = dict(
        batch_size=4,
        lr=1e-2,
        warmup_steps=3,
        max_steps=30,
        checkpoint_every=7,
        keep_checkpoints=2,
        log_every=5,
        sample_every=0,
        num_workers=0,
        ema_decay=0.9,
        ema_warmup=4,
    )
    base.update(overrides)
    return TrainConfig(**base)


def read_losses(run: Path) -> list[tuple[int, float]]:
    lines = (run / "logs" / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_tensors(ckpt.latest_checkpoint(run / "checkpoints") / "models/net.safetensors")


def script_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    return env


# --------------------------------------------------------------------------- in-process engine


def test_grad_accumulation_equals_large_batch(tmp_path):
    results = []
    for batch, accum in ((8, 1), (4, 2)):
        cfg = toy_config(batch_size=batch, grad_accum=accum, max_steps=1, ema_warmup=0)
        task = ToyTask()
        task.net[1].p, task.noise = 0.0, 0.0
        trainer = Trainer(task, cfg, tmp_path / f"b{batch}", ToyDataset(), progress=False, cpu=True)
        trainer.fit()
        results.append((read_losses(tmp_path / f"b{batch}"), task.net[0].weight.detach().clone()))
    (l1, w1), (l2, w2) = results
    assert l1[0][1] == pytest.approx(l2[0][1], rel=1e-3)
    torch.testing.assert_close(w1, w2, atol=1e-6, rtol=1e-5)


def test_run_layout_export_and_keep_last_k(tmp_path):
    run = tmp_path / "run"
    result = Trainer(
        ToyTask(), toy_config(max_steps=15), run, ToyDataset(), run_config={"a": 1}, cpu=True
    ).fit()
    assert not result.interrupted and result.step == 15
    assert json.loads((run / "config.json").read_text()) == {"a": 1}
    steps = [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")]
    assert steps == [14, 15]
    assert [s for s, _ in read_losses(run)] == list(range(1, 16))
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "logs").iterdir())


def test_intermediate_exports_are_the_ema_model_of_their_step(tmp_path):
    """`export_every` writes exports/step-N/ with what a run stopped at N exports (a constant
    learning rate, so that the two runs agree up to N), and does not change the run: its final
    export equals one of a run without intermediate exports."""

    def run(name: str, max_steps: int = 10, export_every: int = 0) -> Path:
        config = toy_config(
            max_steps=max_steps, checkpoint_every=0, export_every=export_every, schedule="constant"
        )
        Trainer(SplitToyTask(), config, tmp_path / name, ToyDataset(), cpu=True).fit()
        return tmp_path / name

    def exported(path: Path) -> dict[str, torch.Tensor]:
        return ckpt.load_tensors(path / "export.safetensors")

    every = run("every", export_every=4)
    assert sorted(p.name for p in (every / "exports").iterdir()) == [
        "step-00000004",
        "step-00000008",
    ]
    pairs = (
        (exported(every / "exports" / "step-00000008"), exported(run("short", 8) / "model")),
        (exported(every / "model"), exported(run("plain") / "model")),
    )
    for ours, theirs in pairs:
        assert ours.keys() == theirs.keys()
        for name, tensor in theirs.items():
            torch.testing.assert_close(ours[name], tensor, rtol=0, atol=0)


def test_interrupted_checkpoint_write_keeps_previous_loadable(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(ToyTask(), toy_config(max_steps=3), run, ToyDataset(), cpu=True)
    trainer.fit()
    before = final_weights(run)
    trainer.state.step = 4
    with torch.no_grad():
        trainer.task.net[0].weight.add_(1.0)
    real_replace = os.replace

    def crash_on_publish(src, dst):
        if ".staging-" in str(src):
            raise OSError("simulated crash before rename")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", crash_on_publish)
    with pytest.raises(OSError, match="simulated crash"):
        trainer.save_checkpoint()
    monkeypatch.setattr(ckpt.os, "replace", real_replace)
    assert ckpt.latest_checkpoint(run / "checkpoints").name == "step-00000003"
    fresh = Trainer(ToyTask(), toy_config(max_steps=3), run, ToyDataset(), cpu=True)
    assert fresh.load_latest().name == "step-00000003"
    assert fresh.step == 3
    for k, v in before.items():
        assert torch.equal(fresh.task.net.state_dict()[k], v)


def test_dataset_smaller_than_a_batch_is_a_user_error(tmp_path):
    trainer = Trainer(
        ToyTask(), toy_config(batch_size=8), tmp_path / "r", ToyDataset(5), progress=False, cpu=True
    )
    with pytest.raises(AudioXError, match="dataset too small"):
        trainer.fit(max_steps=2)


def test_unknown_precision_is_a_user_error(tmp_path):
    with pytest.raises(AudioXError, match="precision"):
        Trainer(ToyTask(), toy_config(precision="fp8"), tmp_path, ToyDataset(), cpu=True)


class TwoRateTask(Task):
    """Two regressors: `fast` updates every step, `slow` every third (update_every=3)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.fast, self.slow = nn.Linear(6, 3), nn.Linear(6, 3)

    def modules(self) -> dict[str, nn.Module]:
        return {"fast": self.fast, "slow": self.slow}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return {"fast": OptimizerSpec(("fast",)), "slow": OptimizerSpec(("slow",), update_every=3)}

    def phases(self, step: int) -> list[str]:
        return ["fast", "slow"] if (step + 1) % 3 == 0 else ["fast"]

    def ema_modules(self) -> list[str]:
        return ["fast", "slow"]

    def training_step(self, batch, phase: str, ctx: StepContext) -> dict[str, torch.Tensor]:
        pred = ctx.modules[phase](batch["x"].to(ctx.device))
        return {"loss": ((pred - batch["y"]) ** 2).mean()}


def test_slow_optimizer_schedule_spans_its_own_updates_and_ema_follows_them(tmp_path):
    cfg = toy_config(max_steps=9, warmup_steps=3, checkpoint_every=0)
    trainer = Trainer(TwoRateTask(), cfg, tmp_path, ToyDataset(), progress=False, cpu=True)
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "logs/metrics.jsonl").read_text().splitlines()]
    slow = [r["lr/slow"] for r in rows if "lr/slow" in r]
    expected = [cfg.lr * lr_factor(k, "cosine", 1, 3) for k in (1, 2, 3)]
    assert slow == pytest.approx(expected) and slow[-1] == pytest.approx(0.0)
    assert rows[-1]["lr/fast"] == pytest.approx(0.0)
    assert trainer.ema["fast"].updates == 9 and trainer.ema["slow"].updates == 3
    with pytest.raises(ValueError, match="update_every"):
        OptimizerSpec(("fast",), update_every=0)


def test_fresh_run_into_a_run_folder_with_checkpoints_is_refused(tmp_path):
    cfg = toy_config(max_steps=3)
    Trainer(ToyTask(), cfg, tmp_path, ToyDataset(), run_config={"a": 1}, cpu=True).fit()
    again = Trainer(ToyTask(), cfg, tmp_path, ToyDataset(), run_config={"a": 2}, cpu=True)
    with pytest.raises(AudioXError, match="already has checkpoints; pass --resume") as info:
        again.fit(max_steps=5)
    assert str(info.value).startswith(str(tmp_path)) and "\n" not in str(info.value)
    assert json.loads((tmp_path / "config.json").read_text()) == {"a": 1}
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "checkpoints")] == [3]
    assert again.fit(max_steps=5, resume=True).step == 5


def test_resume_drops_a_half_written_metrics_line(tmp_path):
    Trainer(ToyTask(), toy_config(max_steps=3), tmp_path, ToyDataset(), cpu=True).fit()
    with (tmp_path / "logs/metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "loss": 1.0}\n{"step": 5, "lo')
    trainer = Trainer(ToyTask(), toy_config(), tmp_path, ToyDataset(), progress=False, cpu=True)
    trainer.fit(max_steps=4, resume=True)
    assert [s for s, _ in read_losses(tmp_path)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "damaged", ["optim/net.pt", "task.pt", "task/rank-0.pt", "rng/rank-0.pt", "trainer.json"]
)
def test_corrupt_checkpoint_file_is_a_one_line_user_error(tmp_path, damaged):
    Trainer(ToyTask(), toy_config(max_steps=3), tmp_path, ToyDataset(), cpu=True).fit()
    path = ckpt.latest_checkpoint(tmp_path / "checkpoints") / damaged
    path.write_bytes(b"\x00garbage{")
    trainer = Trainer(ToyTask(), toy_config(), tmp_path, ToyDataset(), progress=False, cpu=True)
    with pytest.raises(AudioXError, match="cannot read checkpoint") as info:
        trainer.load_latest()
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_checkpoint_from_before_per_process_task_state_still_loads(tmp_path):
    """Older checkpoints keep the task's state in task.pt (no task/ folder)."""
    Trainer(ToyTask(), toy_config(max_steps=3), tmp_path, ToyDataset(), cpu=True).fit()
    path = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    shutil.rmtree(path / "task")
    torch.save({"task": {}}, path / "task.pt")
    trainer = Trainer(ToyTask(), toy_config(), tmp_path, ToyDataset(), progress=False, cpu=True)
    assert trainer.load_latest() == path and trainer.step == 3


# --------------------------------------------------------------------------- subprocesses


def test_sigterm_and_resume_is_bitwise_identical(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    cmd = [sys.executable, str(HERE), "--max-steps", "24"]
    kill_at = random.Random().randint(3, 16)
    proc = subprocess.Popen([*cmd, str(cut), "--sleep", "0.05"], env=script_env())
    metrics = cut / "logs" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= kill_at:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(ToyTask(), toy_config(), full, ToyDataset(), progress=False, cpu=True).fit(24)
    finally:
        torch.set_num_threads(threads)
    stopped = ckpt.latest_checkpoint(cut / "checkpoints")
    stopped_step = int(stopped.name.split("-")[1])
    assert kill_at <= stopped_step < 24, f"stop at {stopped_step}, signal after {kill_at}"

    subprocess.run([*cmd, str(cut), "--resume"], check=True, env=script_env(), timeout=120)
    assert read_losses(cut) == read_losses(full)
    a, b = final_weights(full), final_weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_gloo_processes_stay_in_sync_on_different_samples(tmp_path):
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert launcher is not None
    run = tmp_path / "ddp"
    subprocess.run(
        [
            launcher,
            "--nproc_per_node",
            "2",
            "--master_port",
            str(29500 + os.getpid() % 1000),
            str(HERE),
            str(run),
            "--max-steps",
            "3",
            "--report",
        ],
        check=True,
        env=script_env(),
        timeout=180,
    )
    reports = [json.loads((run / f"rank-{r}.json").read_text()) for r in range(2)]
    assert reports[0]["weights"] == reports[1]["weights"]
    seen0, seen1 = set(reports[0]["seen"]), set(reports[1]["seen"])
    assert len(seen0) == len(seen1) == 3 * 4
    assert not seen0 & seen1


FSDP_STEPS = 14
SPLIT_NETS = ("body", "head")


def launch_fsdp_scenario(root: Path, processes: int, gpu: bool, orig_params: bool) -> None:
    """Run `_fsdp_scenario` under torchrun with FSDP asked for as `accelerate launch` does."""
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert launcher is not None
    env = dict(script_env(), ACCELERATE_USE_FSDP="true", FSDP_USE_ORIG_PARAMS=str(orig_params))
    port = str(29600 + os.getpid() % 1000)
    cmd = [launcher, "--nproc_per_node", str(processes), "--master_port", port, str(HERE)]
    cmd += [str(root), "--max-steps", str(FSDP_STEPS), "--fsdp-scenario"]
    subprocess.run([*cmd, *(["--gpu"] if gpu else [])], check=True, env=env, timeout=300)


def checkpoint_tensors(run: Path) -> dict[str, torch.Tensor]:
    """Models, EMA and the export of a run's newest checkpoint, keyed by file/tensor."""
    latest = ckpt.latest_checkpoint(run / "checkpoints")
    files = [latest / f"{kind}/{n}.safetensors" for kind in ("models", "ema") for n in SPLIT_NETS]
    files.append(run / "model" / "export.safetensors")
    return {
        f"{path.parent.name}/{path.stem}/{k}": v
        for path in files
        for k, v in ckpt.load_tensors(path).items()
    }


def assert_resume_matches_uninterrupted(root: Path, exact: bool) -> None:
    full, cut = read_losses(root / "full"), read_losses(root / "cut")
    assert [s for s, _ in cut] == [s for s, _ in full] == list(range(1, FSDP_STEPS + 1))
    tolerance = {"atol": 0.0, "rtol": 0.0} if exact else {"atol": 1e-6, "rtol": 1e-5}
    torch.testing.assert_close([v for _, v in cut], [v for _, v in full], **tolerance)
    a, b = checkpoint_tensors(root / "full"), checkpoint_tensors(root / "cut")
    assert a.keys() == b.keys()
    torch.testing.assert_close(b, a, **tolerance)


def assert_matches_single_process(root: Path, processes: int, run: Path) -> None:
    """The FSDP run's weights, EMA, export and gradient norms equal those of one process
    training on the same global batches (batch_size x processes)."""
    cfg = toy_config(batch_size=4 * processes, log_every=0)
    Trainer(SplitToyTask(), cfg, run, ToyDataset(), progress=False, cpu=True).fit(FSDP_STEPS)
    sharded, single = checkpoint_tensors(root / "full"), checkpoint_tensors(run)
    assert sharded.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(sharded[key].cpu(), single[key], atol=2e-6, rtol=1e-5)
    for key in [k for k in sharded if k.startswith("ema/")]:
        _, name, tensor = key.split("/")
        if tensor == "__updates__":
            assert int(sharded[key]) == FSDP_STEPS
            continue
        ema, weight = sharded[key].cpu(), sharded[f"models/{name}/{tensor}"].cpu()
        assert not torch.allclose(ema, weight, atol=1e-4), f"{key}: EMA should lag the weights"
        assert torch.equal(sharded[f"model/export/{name}.{tensor}"].cpu(), ema)
    rows = [
        json.loads(line) for line in (root / "full/logs/metrics.jsonl").read_text().splitlines()
    ]
    ref = [json.loads(line) for line in (run / "logs/metrics.jsonl").read_text().splitlines()]
    norms = [r["grad_norm/net"] for r in rows]
    assert norms == pytest.approx([r["grad_norm/net"] for r in ref], rel=1e-5)
    assert max(norms) > cfg.grad_clip, "the clipping bound should be active on some steps"


@pytest.fixture(scope="module", params=[True, False], ids=["orig_params", "flat_params"])
def cpu_fsdp_runs(request, tmp_path_factory) -> Path:
    """The FSDP scenario on two gloo processes, with FSDP_USE_ORIG_PARAMS true and false."""
    root = tmp_path_factory.mktemp("fsdp")
    launch_fsdp_scenario(root, processes=2, gpu=False, orig_params=request.param)
    return root


def test_fsdp_on_two_gloo_processes_really_shards(cpu_fsdp_runs):
    reports = [json.loads((cpu_fsdp_runs / f"rank-{r}.json").read_text()) for r in range(2)]
    for name, net in SplitToyTask().modules().items():
        total = sum(p.numel() for p in net.parameters())
        local = [report[name] for report in reports]
        assert max(local) < total <= sum(local) <= total + len(local), (name, local, total)
    latest = ckpt.latest_checkpoint(cpu_fsdp_runs / "full" / "checkpoints")
    assert ckpt.read_manifest(latest)["sharded"] is True


def test_fsdp_resume_restores_sharded_optimizer_and_ema_state(cpu_fsdp_runs):
    """A run stopped at step 7 and resumed by a fresh Trainer equals an uninterrupted one,
    bitwise: losses, weights, EMA and the EMA export."""
    assert_resume_matches_uninterrupted(cpu_fsdp_runs, exact=True)


def test_fsdp_ema_weights_and_export_equal_a_single_process_run(cpu_fsdp_runs, tmp_path):
    assert_matches_single_process(cpu_fsdp_runs, 2, tmp_path / "single")


def test_resuming_across_the_fsdp_switch_is_a_user_error(tmp_path):
    Trainer(SplitToyTask(), toy_config(max_steps=2), tmp_path, ToyDataset(), cpu=True).fit()
    path = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    manifest = json.loads((path / ckpt.MANIFEST).read_text())
    (path / ckpt.MANIFEST).write_text(json.dumps({**manifest, "sharded": True}))
    trainer = Trainer(SplitToyTask(), toy_config(), tmp_path, ToyDataset(), cpu=True)
    with pytest.raises(AudioXError, match="written with FSDP, resumed without FSDP") as info:
        trainer.load_latest()
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


@pytest.mark.gpu
def test_fsdp_through_accelerate_on_gpus(tmp_path):
    """Accelerate's own FSDP path (accelerators only): one or two GPUs, same checks as on CPU."""
    processes = min(torch.cuda.device_count(), 2)
    if processes == 0:
        pytest.skip("needs a GPU")
    launch_fsdp_scenario(tmp_path / "fsdp", processes, gpu=True, orig_params=True)
    assert_resume_matches_uninterrupted(tmp_path / "fsdp", exact=False)
    assert_matches_single_process(tmp_path / "fsdp", processes, tmp_path / "single")


def _fsdp_scenario(root: Path, steps: int, gpu: bool) -> None:
    """An uninterrupted `full` run, and a `cut` run stopped halfway then resumed by a fresh
    Trainer; each rank reports how many parameters of each network it holds."""
    for run, stop, resume in (
        ("full", steps, False),
        ("cut", steps // 2, False),
        ("cut", steps, True),
    ):
        cfg = toy_config(log_every=0)
        trainer = Trainer(
            SplitToyTask(), cfg, root / run, ToyDataset(), progress=False, cpu=not gpu
        )
        trainer.fit(max_steps=stop, resume=resume)
    local = {n: sum(p.numel() for p in trainer.modules[n].parameters()) for n in SPLIT_NETS}
    Path(root, f"rank-{trainer.rank}.json").write_text(json.dumps(local))


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--fsdp-scenario", action="store_true")
    args = parser.parse_args()
    if args.fsdp_scenario:
        _fsdp_scenario(Path(args.run), args.max_steps, args.gpu)
        return
    task = ToyTask(sleep=args.sleep)
    trainer = Trainer(task, toy_config(), args.run, ToyDataset(), progress=False, cpu=not args.gpu)
    trainer.fit(max_steps=args.max_steps, resume=args.resume)
    if args.report:
        weights = [round(float(p.double().sum()), 12) for p in task.net.parameters()]
        weights += [p.detach().flatten().tolist() for p in task.net.parameters()]
        report = {"weights": weights, "seen": task.seen}
        Path(args.run, f"rank-{trainer.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _main()
