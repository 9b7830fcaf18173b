"""`audiox-turbo recipe`: every stage of the tiny recipe runs, a stage's run resumes after an
interruption, finished stages are skipped, and the exported student generates."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from audiox_turbo.config import to_dict
from audiox_turbo.errors import AudioXError
from audiox_turbo.recipe import STAGES, Recipe, recipe, tiny_recipe


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny recipe run in two goes (up to the codec, then the rest) with the teacher's
    export lost in between; returns (folder, lines echoed by the second go, codec mtime)."""
    out = tmp_path_factory.mktemp("recipe")
    Recipe(tiny_recipe(), out).run(until="teacher")
    assert (out / "teacher" / "model" / "config.json").is_file()
    assert not (out / "distill").exists()
    shutil.rmtree(out / "teacher" / "model")  # killed after its last checkpoint, before export
    codec_time = (out / "codec" / "model" / "config.json").stat().st_mtime_ns
    lines: list[str] = []
    Recipe(tiny_recipe(), out).run(echo=lines.append)
    return out, lines, codec_time


def test_every_stage_runs_and_the_student_generates(finished):
    out, _, _ = finished
    from audiox_turbo.loader import load

    summary = json.loads((out / "benchmark" / "summary.json").read_text())
    assert set(summary) == {"teacher", "student"} and summary["student"]["clips"] > 0
    student = load(out / "distill" / "export", device="cpu")
    assert student.config.sampler.method == "student" and student.trained
    audio = student(["a dog barks"], duration=0.5, seed=0).waveforms
    assert audio.shape[-1] == 8000 and float(abs(audio).max()) > 0
    for run in ("codec", "decoder", "teacher", "finetune", "distill"):
        assert (out / "curves" / f"{run}.png").stat().st_size > 1000
    # the fine-tune starts from the teacher, on its own crops; the student distils its result
    finetune_run = json.loads((out / "finetune.json").read_text())
    assert finetune_run["model"] == str(out / "teacher" / "model")
    assert finetune_run["train"]["crop_seconds"] == 1.0
    distill_run = json.loads((out / "distill.json").read_text())
    assert distill_run["model"] == str(out / "finetune" / "model")
    assert json.loads((out / "finetune" / "model" / "config.json").read_text())["trained"]
    # the teacher's codec is the refined decoder's, on the codec stage's (frozen) encoder
    teacher_run = json.loads((out / "teacher.json").read_text())
    assert teacher_run["teacher"]["codec_from"] == str(out / "decoder" / "model")
    assert json.loads((out / "decoder.json").read_text())["codec"]["freeze_encoder"]
    assert set(json.loads((out / "stage_seconds.json").read_text())) == set(STAGES)
    assert json.loads((out / "recipe.json").read_text()) == to_dict(tiny_recipe())


def test_a_second_student_records_its_config_beside_the_recipes(finished):
    out = finished[0]
    variant = tiny_recipe()
    settings = dataclasses.replace(variant.distill.distill, gan_weight=0.5)
    variant = dataclasses.replace(
        variant, distill=dataclasses.replace(variant.distill, distill=settings)
    )
    Recipe(variant, out, student="distill_b").run(until="teacher", echo=lambda _: None)
    assert json.loads((out / "recipe.json").read_text()) == to_dict(tiny_recipe())
    assert json.loads((out / "recipe_distill_b.json").read_text()) == to_dict(variant)


def test_a_second_students_stage_times_do_not_overwrite_the_recipes(tmp_path):
    own, other = (
        Recipe(tiny_recipe(), tmp_path),
        Recipe(tiny_recipe(), tmp_path, student="distill_b"),
    )
    assert [own.time_key(s) for s in ("teacher", "distill", "export", "benchmark")] == [
        "teacher",
        "distill",
        "export",
        "benchmark",
    ]
    assert [other.time_key(s) for s in ("teacher", "distill", "export", "benchmark")] == [
        "teacher",
        "distill_b",
        "distill_b_export",
        "distill_b_benchmark",
    ]
    # a second student's benchmark is not taken as done by the recipe's summary
    done = {r: {s.name: s.output for s in r.stages()}["benchmark"] for r in (own, other)}
    assert done[own] == tmp_path / "benchmark" / "summary.json"
    assert done[other] == tmp_path / "benchmark" / "summary_distill_b.json"


def test_the_export_is_half_precision_and_says_what_it_was_trained_on(finished):
    """The exported student stores conditioning and denoiser in float16 (the codec in float32),
    loads back as float32 with the same weights, and its training.json names the recipe, the
    world and the benchmark rows that `audiox-turbo info` prints."""
    from safetensors.torch import load_file

    from audiox_turbo.model_dir import load_native_components, training_summary

    out, _, _ = finished
    export, full = out / "distill" / "export", out / "distill" / "model"
    for name, dtype in (("denoiser", "F16"), ("conditioning", "F16"), ("codec", "F32")):
        tensors = load_file(export / f"{name}.safetensors")
        floating = {str(v.dtype) for v in tensors.values() if v.is_floating_point()}
        assert floating == {"torch.float16" if dtype == "F16" else "torch.float32"}, name
    _, halves = load_native_components(export)
    _, originals = load_native_components(full)
    for name in ("denoiser", "codec"):
        for (key, a), b in zip(
            halves[name].state_dict().items(), originals[name].state_dict().values(), strict=True
        ):
            assert a.dtype == b.dtype
            if a.is_floating_point():
                torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=key)
    lines = training_summary(export)
    assert lines[0] == "trained by: audiox-turbo recipe tiny (cpu)"
    assert lines[1].startswith("trained on: the embedded world, synthetic sources, 8 clips")
    chosen = json.loads((out / "distill" / "select" / "choice.json").read_text())["step"]
    assert lines[2] == f"steps: codec 2, decoder 2, teacher 2, finetune 2, student {chosen}"
    assert lines[3].startswith(
        f"student: step {chosen}, chosen by the latest not beaten by the lowest validation FD "
        "on 90% of 300 prompt resamples among steps 1 ("
    )
    assert any(line.startswith("world benchmark, student: class accuracy") for line in lines)


def test_the_export_is_the_latest_student_the_best_does_not_clearly_beat(finished):
    """Both distillation steps were scored on the validation split; the export holds the
    weights of the step the rule chose, and training.json records the choice and the shares
    of paired resamples on which the lowest-FD step beat each, recomputed here."""
    from audiox_turbo.eval.metrics import paired_resampled_fds
    from audiox_turbo.model_dir import load_native_components

    out = finished[0]
    assert (out / "world" / "val.jsonl").is_file()
    choice = json.loads((out / "distill" / "select" / "choice.json").read_text())
    fd = {int(step): value for step, value in choice["fd"].items()}
    beaten = {int(step): value for step, value in choice["beaten_share"].items()}
    best = min(fd, key=lambda s: (fd[s], -s))
    assert set(fd) == {1, 2} and beaten[best] == 0.0
    assert choice["step"] == max(s for s in fd if s >= best and beaten[s] < 0.9)
    files = {s: out / "distill" / "select" / f"step-{s:08d}" for s in fd}
    for folder in files.values():
        assert json.loads((folder / "world_benchmark.json").read_text())["method"] == "student"
    saved = {}
    for s, folder in files.items():
        with np.load(folder / "world_embeddings.npz") as z:
            saved[s] = z["reference"], z["generated"]
    resampled = paired_resampled_fds(saved[1][0], [saved[s][1] for s in (1, 2)])
    other = 3 - best
    assert beaten[other] == pytest.approx((resampled[best - 1] < resampled[other - 1]).mean())
    chosen = out / "distill" / ("model" if choice["step"] == 2 else "exports/step-00000001")
    _, exported = load_native_components(out / "distill" / "export")
    _, original = load_native_components(chosen)
    for (key, a), b in zip(
        exported["denoiser"].state_dict().items(),
        original["denoiser"].state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=key)
    training = json.loads((out / "distill" / "export" / "training.json").read_text())
    assert training["selection"] == choice and training["steps"]["student"] == choice["step"]


def _scored_candidates(
    tmp_path, generated: dict[int, np.ndarray], ids: dict[int, list[str]] | None = None
) -> Recipe:
    """A recipe whose distillation exported steps 10…40 (from_step 20), each scored on 64
    validation prompts (`ids[step]`, default val-0…63): the references `_REFERENCE` and
    `generated[step]`."""
    from audiox_turbo.eval.metrics import frechet_distance

    config = dataclasses.replace(
        tiny_recipe(),
        distill=dataclasses.replace(
            tiny_recipe().distill,
            train=dataclasses.replace(tiny_recipe().distill.train, max_steps=40, export_every=10),
        ),
        selection=dataclasses.replace(tiny_recipe().selection, from_step=20),
    )
    r = Recipe(config, tmp_path)
    for step, embeddings in generated.items():
        model = r.path("distill", "model" if step == 40 else f"exports/step-{step:08d}")
        model.mkdir(parents=True)
        folder = r.path("distill", "select", f"step-{step:08d}")
        folder.mkdir(parents=True)
        clips = (ids or {}).get(step, [f"val-{i}" for i in range(64)])
        np.savez(
            folder / "world_embeddings.npz",
            ids=np.array(clips),
            reference=_REFERENCE,
            generated=embeddings,
        )
        fd = frechet_distance(_REFERENCE, embeddings)
        (folder / "world_benchmark.json").write_text(
            json.dumps({"rows": [{"task": "all", "fd": fd}]})
        )
    return r


_RNG = np.random.default_rng(3)
_REFERENCE = _RNG.normal(size=(64, 4))
_NOISE = 0.3 * _RNG.normal(size=(64, 4))
_NEAR = _REFERENCE + _NOISE
_SHUFFLED = _REFERENCE + _NOISE[_RNG.permutation(64)]  # the same noise on other prompts


def test_a_later_student_is_kept_unless_an_earlier_one_is_clearly_better(tmp_path):
    """The rule alone, on scored candidates (a scored candidate is not generated again):
    step 40 differs from step 20 by which prompts its noise falls on, so it is kept though
    its FD is higher; step 30 (shifted) is beaten on every resample."""
    generated = {10: _NEAR, 20: _NEAR, 30: _NEAR + 1.0, 40: _SHUFFLED}
    r = _scored_candidates(tmp_path, generated)
    assert sorted(r.candidates()) == [20, 30, 40]  # step 10 is before `from_step`
    assert r._choose_student() == r.path("distill", "model")
    choice = json.loads(r.path("distill", "select", "choice.json").read_text())
    assert choice["step"] == 40 and choice["fd"]["40"] > choice["fd"]["20"]
    assert choice["beaten_share"]["30"] == 1.0 and 0.2 < choice["beaten_share"]["40"] < 0.9


def test_an_earlier_student_clearly_better_than_the_later_ones_is_chosen(tmp_path):
    r = _scored_candidates(tmp_path, {20: _NEAR, 30: _SHUFFLED, 40: _NEAR + 1.0})
    assert r._choose_student() == r.path("distill", "exports", "step-00000030")
    choice = json.loads(r.path("distill", "select", "choice.json").read_text())
    assert choice["step"] == 30 and choice["beaten_share"]["40"] == 1.0


def test_candidates_scored_on_different_clips_are_refused(tmp_path):
    other = {40: [f"val-{i}" for i in range(1, 65)]}
    r = _scored_candidates(tmp_path, {20: _NEAR, 30: _NEAR, 40: _NEAR}, other)
    with pytest.raises(AudioXError, match="scored on different validation clips"):
        r._choose_student()


@pytest.mark.parametrize("field", [{"confidence": 0.0}, {"confidence": 1.5}, {"draws": 0}])
def test_a_selection_rule_out_of_range_is_refused(field):
    from audiox_turbo.recipe import SelectionSpec

    with pytest.raises(ValueError, match=f"selection.{next(iter(field))} must be"):
        SelectionSpec(**field)


def test_the_rule_keeps_the_latest_step_within_the_confidence():
    from audiox_turbo.recipe import latest_not_clearly_beaten

    resampled = {
        1: np.array([1.0, 1.0, 1.0, 1.0]),
        2: np.array([2.0, 2.0, 0.5, 2.0]),  # beaten on 3 of 4
        3: np.array([2.0, 0.5, 0.5, 2.0]),  # beaten on 2 of 4
        4: np.array([2.0, 2.0, 2.0, 2.0]),  # beaten on every resample
    }
    fd = {1: 1.0, 2: 1.5, 3: 1.2, 4: 2.0}
    assert latest_not_clearly_beaten(fd, resampled, 0.9) == (
        3,
        {1: 0.0, 2: 0.75, 3: 0.5, 4: 1.0},
    )
    assert latest_not_clearly_beaten(fd, resampled, 0.7)[0] == 3
    assert latest_not_clearly_beaten(fd, resampled, 0.5)[0] == 1
    assert latest_not_clearly_beaten({**fd, 4: 1.0}, resampled, 0.9)[0] == 4  # a tie: later


def test_finished_stages_are_skipped_and_an_interrupted_one_resumes(finished):
    out, lines, codec_time = finished
    done = [line.split()[1].rstrip(":") for line in lines if line.endswith(")")]
    assert done[:4] == ["world", "codec", "latents", "decoder"]
    assert (out / "codec" / "model" / "config.json").stat().st_mtime_ns == codec_time
    assert any(line.startswith("[5/9] teacher: ") and line.endswith(" s") for line in lines)
    assert (out / "teacher" / "model" / "denoiser.safetensors").is_file()
    again: list[str] = []
    Recipe(tiny_recipe(), out).run(echo=again.append)
    assert all(": done (" in line for line in again)


def test_recipe_errors_are_one_line(tmp_path):
    with pytest.raises(AudioXError, match="not a file nor one of"):
        recipe("no-such-recipe")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"world": {"clips": 3}}))
    with pytest.raises(AudioXError, match=r"bad\.json.*clips"):
        recipe(str(bad))
    with pytest.raises(AudioXError, match="--until 'deploy'"):
        Recipe(tiny_recipe(), tmp_path / "r").run(until="deploy")


def _leaves(data, path=""):
    if isinstance(data, dict):
        return {k: v for key in data for k, v in _leaves(data[key], f"{path}.{key}").items()}
    return {path: data}


def test_the_fast_demo_recipe_differs_from_demo_only_in_its_budget(tmp_path):
    fast, demo = _leaves(to_dict(recipe("demo-fast"))), _leaves(to_dict(recipe("demo")))
    changed = {k: fast[k] for k in fast if fast[k] != demo[k]}
    assert changed == {
        ".name": "demo-fast",
        ".teacher.train.max_steps": 5000,
        ".teacher.train.precision": "bf16",
        ".finetune.train.max_steps": 1500,
        ".finetune.train.precision": "bf16",
        ".distill.train.max_steps": 900,
        ".distill.train.precision": "bf16",
        ".distill.distill.regression_pool": 16,
        ".distill.distill.teacher_bf16": True,
        ".distill.distill.gan_batch_fraction": 0.5,
    }
    Recipe(recipe("demo-fast"), tmp_path).stages()
    runs = {s: json.loads((tmp_path / f"{s}.json").read_text()) for s in ("teacher", "distill")}
    assert runs["teacher"]["train"]["precision"] == "bf16"
    assert runs["distill"]["train"]["precision"] == "bf16"
    assert runs["distill"]["model"] == str(tmp_path / "finetune" / "model")


def test_frozen_encoder_features_are_cached_and_video_tasks_trained(tmp_path):
    """The demo preset's text (MiniLM) and video (motion) encoders are frozen: the latents
    stage caches both, and its teacher trains the video tasks on them; the tiny preset's
    trainable video encoder gets no cached features."""
    demo = Recipe(recipe("demo"), tmp_path / "demo")
    stages = {s.name: s for s in demo.stages()}
    assert demo.selects()  # the shipped student is chosen on the validation split
    (encode,) = stages["latents"].commands
    assert "--text" in encode and "--video" in encode
    teacher = json.loads((tmp_path / "demo" / "teacher.json").read_text())["teacher"]
    assert {"T2A", "T2M", "V2A", "TV2A"} <= set(teacher["tasks"])
    tiny = {s.name: s for s in Recipe(tiny_recipe(), tmp_path / "tiny").stages()}
    assert "--video" not in tiny["latents"].commands[0]
