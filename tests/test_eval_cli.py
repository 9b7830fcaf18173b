"""The evaluation commands: eval reports, the world benchmark, generation timing, error paths."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import typer
from typer.testing import CliRunner

from audiox_turbo.cli.eval import bench_command, benchmark_app, eval_command, judge_app
from audiox_turbo.data.manifest import TASKS, read_manifest
from audiox_turbo.errors import AudioXError
from audiox_turbo.eval.metrics import frechet_distance
from audiox_turbo.eval.world_benchmark import MUSIC_TASKS, VIDEO_TASKS

SR = 16000


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """The commands as the top-level CLI registers them."""
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("bench")(bench_command)
    app.add_typer(benchmark_app, name="benchmark")
    app.add_typer(judge_app, name="judge")
    return app


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small judge with random weights (the tests check plumbing, not accuracy)."""
    from audiox_turbo.eval.judge import JudgeConfig, JudgeNet, save_judge

    torch.manual_seed(0)
    net = JudgeNet(JudgeConfig(channels=(4, 8, 8, 8), embed_dim=16))
    return save_judge(net, tmp_path_factory.mktemp("judge") / "judge", {})


def _write_set(folder: Path, n: int, seed: int, base_hz: float) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    for i in range(n):
        tone = 0.4 * np.sin(2 * np.pi * base_hz * (1 + 0.1 * i) * t)
        noise = 0.05 * rng.standard_normal(t.size)
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"clip{i:02d}.wav", (tone + noise).astype(np.float32), SR)


def _invoke(app: typer.Typer, args: list[object]):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_eval_writes_report_with_requested_metrics(app, judge_dir, tmp_path) -> None:
    _write_set(tmp_path / "gen", 12, 0, 300.0)
    _write_set(tmp_path / "ref", 12, 1, 320.0)
    out = tmp_path / "report"
    args = ["eval", "--gen", tmp_path / "gen", "--ref", tmp_path / "ref", "--checkpoint"]
    args += [judge_dir, "--metrics", "fd,fad_inf,kad,kl,is", "--out", out]
    result = _invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    for key in ("fd", "fad_inf", "kad", "kl_ref_to_gen", "kl_gen_to_ref", "is_mean", "is_std"):
        assert math.isfinite(report["metrics"][key]), key
    assert report["metrics"]["fd"] > 0 and report["metrics"]["is_mean"] >= 1.0
    assert report["n_gen"] == report["n_ref"] == 12 and report["metrics"]["kl_pairs"] == 12
    distances = [s["distance"] for s in report["samples"]]
    assert distances == sorted(distances)
    assert "| fd |" in (out / "report.md").read_text()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "metrics.png").stat().st_size > 0
        assert (out / "spectrograms.png").stat().st_size > 0


def test_eval_of_a_set_against_itself_is_near_zero(judge_dir, tmp_path) -> None:
    from audiox_turbo.eval.report import evaluate

    _write_set(tmp_path / "a", 6, 0, 200.0)
    report = evaluate(
        tmp_path / "a",
        tmp_path / "a",
        tmp_path / "r",
        checkpoint=judge_dir,
        metric_names=["fd", "kl"],
        plots=False,
        progress=False,
    )
    assert report["metrics"]["fd"] == pytest.approx(0.0, abs=1e-6)
    assert report["metrics"]["kl_ref_to_gen"] == pytest.approx(0.0, abs=1e-4)  # eps in log q
    assert report["samples"][0]["distance"] == pytest.approx(0.0, abs=1e-4)


def test_eval_errors_name_the_path(app, judge_dir, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    _write_set(tmp_path / "ref", 3, 0, 200.0)
    ref, judge = tmp_path / "ref", ["--checkpoint", judge_dir]
    cases = [
        (["--gen", tmp_path / "empty", "--ref", ref, *judge], "empty"),
        (["--gen", ref, "--ref", tmp_path / "missing", *judge], "missing"),
        (["--gen", ref, "--ref", ref, "--checkpoint", tmp_path / "nojudge"], "nojudge"),
        (["--gen", ref, "--ref", ref, *judge, "--metrics", "fd,bogus"], "bogus"),
    ]
    for args, name in cases:
        result = _invoke(app, ["eval", *args, "--out", tmp_path / "r"])
        assert isinstance(result.exception, AudioXError), result.output
        message = str(result.exception)
        assert name in message and "\n" not in message


def test_judge_train_and_accuracy_commands(app, tmp_path) -> None:
    from audiox_turbo.data.world.generate import generate_world

    kwargs = {"seed": 1, "split": "train", "duration": 1.0, "video_fraction": 0.0}
    generate_world(tmp_path / "w", 6, **kwargs, progress=False)
    generate_world(tmp_path / "real", 4, **kwargs, progress=False, sources="real")
    result = _invoke(
        app,
        [
            "judge",
            "train",
            "--data",
            tmp_path / "w",
            "--data",
            tmp_path / "real",
            "--out",
            tmp_path / "j",
            "--epochs",
            "1",
            "--batch-size",
            "6",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "j" / "judge.safetensors").is_file()
    meta = json.loads((tmp_path / "j" / "config.json").read_text())["meta"]
    assert meta["clips"] == 10 and len(meta["trained_on"]) == 2
    result = _invoke(
        app,
        [
            "judge",
            "accuracy",
            "--data",
            tmp_path / "w" / "train.jsonl",
            "--checkpoint",
            tmp_path / "j",
            "--out",
            tmp_path / "acc.json",
        ],
    )
    assert result.exit_code == 0, result.output
    accuracy = json.loads((tmp_path / "acc.json").read_text())
    assert accuracy["clips"] == 6 and 0.0 <= accuracy["class_accuracy"] <= 1.0
    for category in {r.labels["category"] for r in read_manifest(tmp_path / "w" / "train.jsonl")}:
        assert 0.0 <= accuracy[f"class_accuracy_{category}"] <= 1.0
    missing = _invoke(app, ["judge", "train", "--data", tmp_path / "none", "--out", tmp_path])
    assert isinstance(missing.exception, AudioXError) and "none" in str(missing.exception)


def test_largest_class_share_measures_collapse() -> None:
    from audiox_turbo.eval.world_benchmark import largest_share

    assert largest_share(["sfx:wind"] * 3 + ["music:piano"]) == 0.75
    assert largest_share(["a", "b", "c", "d"]) == 0.25
    assert largest_share([]) is None


def test_onset_error_row_has_mean_and_median_over_clips() -> None:
    """The V2A gate reads the median: one clip with no sound at its events (capped at 0.5 s)
    moves the mean, not the median."""
    from audiox_turbo.eval.world_benchmark import ClipScore, summarise

    def clip(onset: float | None) -> ClipScore:
        e = np.zeros(4)
        return ClipScore("V2A", "c", e, e, "sfx:beeps", True, None, None, onset, None)

    row = summarise("V2A", [clip(0.01), clip(0.03), clip(0.5), clip(None)])
    assert row["onset_error_s"] == pytest.approx(0.18)
    assert row["onset_error_median_s"] == pytest.approx(0.03)
    assert summarise("T2A", [clip(None), clip(None)])["onset_error_median_s"] is None


def test_benchmark_world_runs_every_task_on_tiny(app, judge_dir, tmp_path) -> None:
    out = tmp_path / "bench"
    args = ["benchmark", "world", "--model", "tiny", "--clips", "1", "--steps", "1", "--cfg", "2"]
    args += ["--duration", "1", "--judge", judge_dir, "--out", out, "--device", "cpu"]
    result = _invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "world_benchmark.json").read_text())
    assert (report["method"], report["steps"], report["cfg"]) == ("euler", 1, 2.0)
    clips = [json.loads(line) for line in (out / "world_clips.jsonl").read_text().splitlines()]
    assert [c["seed"] for c in clips] == list(range(len(TASKS)))
    assert [c["task"] for c in clips] == list(TASKS)
    saved = np.load(out / "world_embeddings.npz")
    assert list(saved["ids"]) == [c["id"] for c in clips]
    assert list(saved["tasks"]) == list(TASKS)
    all_fd = next(r for r in report["rows"] if r["task"] == "all")["fd"]
    with pytest.warns(RuntimeWarning, match="rank-deficient"):  # 8 clips, 16 dimensions
        fd = frechet_distance(saved["reference"], saved["generated"])
    assert fd == pytest.approx(all_fd)
    for c in clips:
        assert c["class_correct"] == (c["predicted_class"] == c["expected_class"])
        assert c["reference_class"] and c["expected_class"].split(":")[0] in (
            "sfx",
            "music",
            "speech",
        )
        assert (c["onset_error"] is None) == (c["task"] not in ("V2A", "V2M", "TV2A", "TV2M"))
    defaults = ["benchmark", "world", "--model", "tiny", "--clips", "1", "--method", "student"]
    defaults += ["--duration", "1", "--judge", judge_dir, "--out", out, "--device", "cpu"]
    assert _invoke(app, defaults).exit_code == 0
    student = json.loads((out / "world_benchmark.json").read_text())
    assert (student["method"], student["steps"], student["cfg"]) == ("student", 4, 1.0)
    some = [*defaults[:-6], "--tasks", "T2M,T2A", "--out", tmp_path / "some", "--device", "cpu"]
    assert _invoke(app, some).exit_code == 0
    chosen = json.loads((tmp_path / "some" / "world_benchmark.json").read_text())
    clips = {r["task"]: r["clips"] for r in chosen["rows"]}
    assert clips["T2A"] == clips["T2M"] == 1 and clips["all"] == 2 and clips["V2A"] == 0
    bad = _invoke(app, [*defaults[:-6], "--tasks", "T2X", "--out", tmp_path / "bad"])
    assert bad.exit_code != 0 and "unknown tasks ['T2X']" in str(bad.exception)
    assert not (tmp_path / "bad").exists()  # refused before any world is generated
    rows = {r["task"]: r for r in report["rows"]}
    assert set(rows) == {*TASKS, "all"}
    assert 1 / len(TASKS) <= rows["all"]["largest_class_share"] <= 1
    for task in TASKS:
        row = rows[task]
        assert row["clips"] == 1
        assert (out / "gen" / task).is_dir()
        for key in ("embedding_distance", "class_accuracy"):
            assert math.isfinite(row[key]), (task, key)
        if task in MUSIC_TASKS:
            assert math.isfinite(row["tempo_error_pct"]) and row["tempo_error_pct"] >= 0
        else:
            assert row["tempo_error_pct"] is None
        if task not in VIDEO_TASKS:
            assert row["onset_error_s"] is None
        elif row["onset_error_s"] is not None:
            assert 0.0 <= row["onset_error_s"] <= 0.5
    assert math.isfinite(rows["all"]["fd"]) and rows["all"]["clips"] == 8
    assert "TV2M" in (out / "world_benchmark.md").read_text()
    world = read_manifest(out / "world_test" / "test.jsonl")
    assert all(r.source.endswith("(real sources)") for r in world)  # the default: real sources


def test_benchmark_world_samples_each_prompt_several_times(app, judge_dir, tmp_path) -> None:
    """--samples 3: three generations per prompt (seed of the prompt, one batch), each saved,
    judged and recorded; FD takes all of them against each reference once."""
    out = tmp_path / "bench"
    args = ["benchmark", "world", "--model", "tiny", "--clips", "1", "--steps", "1", "--cfg", "2"]
    args += ["--duration", "1", "--judge", judge_dir, "--out", out, "--device", "cpu"]
    result = _invoke(app, [*args, "--tasks", "T2A,T2M", "--samples", "3", "--sources", "synthetic"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "world_benchmark.json").read_text())
    assert report["samples"] == 3
    clips = [json.loads(line) for line in (out / "world_clips.jsonl").read_text().splitlines()]
    assert [c["sample"] for c in clips] == [0, 1, 2, 0, 1, 2]
    assert [c["seed"] for c in clips] == [0, 0, 0, 1, 1, 1]
    assert [c["task"] for c in clips] == ["T2A"] * 3 + ["T2M"] * 3
    waves = [sf.read(out / "gen" / c["task"] / f"{c['id']}_s{c['sample']}.wav")[0] for c in clips]
    assert not np.allclose(waves[0], waves[1]) and not np.allclose(waves[1], waves[2])
    saved = np.load(out / "world_embeddings.npz")
    assert list(saved["samples"]) == [c["sample"] for c in clips]
    assert list(saved["ids"]) == [c["id"] for c in clips]
    generated = saved["generated"]  # each sample judged on its own, not the first one's reading
    assert not np.allclose(generated[0], generated[1]) and not np.allclose(
        generated[1], generated[2]
    )
    rows = {r["task"]: r for r in report["rows"]}
    assert rows["all"]["clips"] == 6 and rows["T2A"]["clips"] == 3
    with pytest.warns(RuntimeWarning, match="rank-deficient"):
        once = frechet_distance(saved["reference"][::3], saved["generated"])
        repeated = frechet_distance(saved["reference"], saved["generated"])
    assert rows["all"]["fd"] == pytest.approx(once) and once != pytest.approx(repeated)
    bad = _invoke(app, [*args, "--samples", "0"])
    assert bad.exit_code != 0 and "--samples 0" in str(bad.exception)


def test_bench_times_student_and_teacher(app, tmp_path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--model", "tiny", "--steps", "1,2", "--cfg", "1,2", "--duration", "0.5"]
    args += ["--repeats", "1", "--device", "cpu", "--out", out]
    result = _invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [(r["sampler"], r["nfe"]) for r in rows] == [("student", 1), ("teacher+cfg", 4)]
    assert all(r["latency_s"] > 0 and r["rtf"] == pytest.approx(r["latency_s"] / 0.5) for r in rows)
    bad = _invoke(app, ["bench", "--steps", "1,2,3", "--cfg", "1,2", "--out", out])
    assert isinstance(bad.exception, AudioXError) and "--cfg" in str(bad.exception)


def test_default_metrics_skip_kl_when_no_names_pair(judge_dir, tmp_path) -> None:
    from audiox_turbo.eval.report import evaluate

    _write_set(tmp_path / "gen", 6, 0, 200.0)
    _write_set(tmp_path / "ref", 6, 1, 240.0)
    for path in (tmp_path / "gen").iterdir():
        path.rename(path.with_name(f"generated_{path.name}"))
    report = evaluate(tmp_path / "gen", tmp_path / "ref", tmp_path / "r", checkpoint=judge_dir)
    assert "fd" in report["metrics"] and "is_mean" in report["metrics"]
    assert not any(k.startswith("kl") for k in report["metrics"])
