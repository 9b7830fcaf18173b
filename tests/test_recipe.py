"""`audiox-turbo recipe`: every stage of the tiny recipe runs, a stage's run resumes after an
interruption, finished stages are skipped, and the exported student generates."""

from __future__ import annotations

import json
import shutil

import pytest

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
    student = load(out / "distill" / "model", device="cpu")
    assert student.config.sampler.method == "student" and student.trained
    audio = student(["a dog barks"], duration=0.5, seed=0).waveforms
    assert audio.shape[-1] == 8000 and float(abs(audio).max()) > 0
    for run in ("codec", "teacher", "distill"):
        assert (out / "curves" / f"{run}.png").stat().st_size > 1000
    assert set(json.loads((out / "stage_seconds.json").read_text())) == set(STAGES)
    assert json.loads((out / "recipe.json").read_text()) == to_dict(tiny_recipe())


def test_finished_stages_are_skipped_and_an_interrupted_one_resumes(finished):
    out, lines, codec_time = finished
    done = [line.split()[1].rstrip(":") for line in lines if line.endswith(")")]
    assert done[:3] == ["world", "codec", "latents"]
    assert (out / "codec" / "model" / "config.json").stat().st_mtime_ns == codec_time
    assert any(line.startswith("[4/6] teacher: ") and line.endswith(" s") for line in lines)
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
