"""A custom architecture from a model config file, trained around a trained codec by the CLI
(`"model": "custom.json"` + `teacher.codec_from`), with no Python API in between."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from audiox_turbo.cli.train import app
from audiox_turbo.config import preset, to_dict
from audiox_turbo.errors import AudioXError
from audiox_turbo.train.run_config import RunConfig
from audiox_turbo.weights import read_safetensors


@pytest.fixture
def clips(tmp_path):
    from test_train_tasks import write_clip_manifest

    return write_clip_manifest(tmp_path)


def run_file(tmp_path, name: str, model: str, **teacher) -> str:
    path = tmp_path / f"{name}.json"
    train = {"batch_size": 2, "crop_seconds": 0.5, "num_workers": 0, "max_steps": 1}
    teacher = {"validation_prompts": [], "validation_batch": 0, **teacher}
    codec = {"validation_clips": 0}
    path.write_text(
        json.dumps({"model": model, "train": train, "teacher": teacher, "codec": codec})
    )
    return str(path)


def test_teacher_around_a_trained_codec_of_a_custom_architecture(tmp_path, clips):
    tiny = preset("tiny")
    custom = dataclasses.replace(tiny, codec=dataclasses.replace(tiny.codec, channels=6))
    (tmp_path / "custom.json").write_text(json.dumps(to_dict(custom)))
    model = str(tmp_path / "custom.json")
    runner = CliRunner()
    codec_run = ["codec", "--config", run_file(tmp_path, "codec", model), "--data", str(clips)]
    result = runner.invoke(app, [*codec_run, "--out", str(tmp_path / "codec")])
    assert result.exit_code == 0, result.output
    trained = tmp_path / "codec" / "model"
    teacher_config = run_file(tmp_path, "teacher", model, codec_from=str(trained))
    teacher_run = ["teacher", "--config", teacher_config, "--data", str(clips)]
    result = runner.invoke(app, [*teacher_run, "--out", str(tmp_path / "teacher")])
    assert result.exit_code == 0, result.output
    exported = tmp_path / "teacher" / "model"
    assert json.loads((exported / "config.json").read_text())["codec"]["channels"] == 6
    codec_weights = read_safetensors(trained / "codec.safetensors")
    for key, value in read_safetensors(exported / "codec.safetensors").items():
        assert np.array_equal(value.numpy(), codec_weights[key].numpy()), key

    mismatch = run_file(tmp_path, "mismatch", "tiny", codec_from=str(trained))
    result = runner.invoke(
        app, ["teacher", "--config", mismatch, "--data", str(clips), "--out", str(tmp_path / "x")]
    )
    assert isinstance(result.exception, AudioXError)
    assert "codec_from" in str(result.exception) and "channels=6" in str(result.exception)


def test_a_broken_model_config_file_is_a_one_line_error(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"name": "x", "denoiser": {"depth": "deep"}}))
    with pytest.raises(AudioXError, match=r"bad\.json.*depth"):
        RunConfig(model=str(tmp_path / "bad.json")).model_config()
    with pytest.raises(AudioXError, match="not a model directory, nor a config file"):
        RunConfig(model=str(tmp_path / "missing.json")).model_config()


def test_teacher_grows_a_trained_teacher_by_the_beat_grid(tmp_path, clips):
    """`init_from` a teacher without the beat grid, under a config with it: every trained weight
    carries over, the grid's read starts at zero and trains; other changes are refused."""
    from audiox_turbo.pipeline import AudioXTurbo

    start = tmp_path / "start"
    AudioXTurbo.from_preset("tiny").save_pretrained(start)
    tiny = preset("tiny")
    grown = dataclasses.replace(
        tiny, conditioning=dataclasses.replace(tiny.conditioning, beat_grid=True)
    )
    (tmp_path / "grown_model.json").write_text(json.dumps(to_dict(grown)))
    config = run_file(tmp_path, "grow", str(tmp_path / "grown_model.json"), init_from=str(start))
    runner = CliRunner()
    args = ["teacher", "--config", config, "--data", str(clips), "--out", str(tmp_path / "t")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    exported = tmp_path / "t" / "model"
    assert json.loads((exported / "config.json").read_text())["conditioning"]["beat_grid"]
    before = read_safetensors(start / "denoiser.safetensors")
    after = read_safetensors(exported / "denoiser.safetensors")
    assert set(after) == set(before) | {"beat_in.weight", "beat_in.bias"}

    deeper = dataclasses.replace(grown, denoiser=dataclasses.replace(tiny.denoiser, depth=3))
    (tmp_path / "deeper_model.json").write_text(json.dumps(to_dict(deeper)))
    config = run_file(tmp_path, "deeper", str(tmp_path / "deeper_model.json"), init_from=str(start))
    args = ["teacher", "--config", config, "--data", str(clips), "--out", str(tmp_path / "x")]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, AudioXError)
    assert "init_from" in str(result.exception) and "does not fit" in str(result.exception)
