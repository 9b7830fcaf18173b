"""The one config scheme: from_dict / to_dict / load_config on model and run configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.config import (
    PRESETS,
    CodecConfig,
    ModelConfig,
    from_dict,
    load_config,
    preset,
    to_dict,
)
from audiox_turbo.errors import AudioXError
from audiox_turbo.train.run_config import (
    CodecTrainingConfig,
    RunConfig,
    TeacherTrainingConfig,
    TrainConfig,
    load_run_config,
)

ROOT = Path(__file__).resolve().parents[1]
RUN_CONFIGS = sorted((ROOT / "configs").glob("*.json"))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_model_presets_round_trip_through_a_file(name, tmp_path):
    config = preset(name)
    write_json_atomic(tmp_path / "config.json", to_dict(config))
    assert load_config(ModelConfig, tmp_path / "config.json") == config
    assert from_dict(ModelConfig, to_dict(config)) == config


def test_run_config_round_trips_with_every_section():
    run = RunConfig(
        model="demo",
        train=TrainConfig(lr=3e-4, betas=(0.8, 0.9), ema_decay=0.99),
        codec=CodecTrainingConfig(discriminator_lr=1e-3, stft_fft_sizes=(64, 32)),
        teacher=TeacherTrainingConfig(tasks=("T2A",), codec_from="runs/codec/model"),
    )
    data = to_dict(run)
    assert data["train"]["betas"] == [0.8, 0.9]
    assert from_dict(RunConfig, json.loads(json.dumps(data))) == run


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_run_config_loads_and_round_trips(path):
    run = load_run_config(path)
    assert from_dict(RunConfig, to_dict(run)) == run
    assert run.model_config().name == run.model


def test_missing_fields_take_the_defaults_and_ints_are_floats():
    config = from_dict(ModelConfig, {"name": "x", "denoiser": {"depth": 3, "mlp_ratio": 2}})
    assert config.denoiser.depth == 3 and config.codec == CodecConfig()
    assert config.denoiser.mlp_ratio == 2.0 and isinstance(config.denoiser.mlp_ratio, float)
    assert from_dict(CodecTrainingConfig, {"discriminator_lr": None}).discriminator_lr is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"denoiser": {"detph": 3}},
            r"^unknown key 'denoiser\.detph'; did you mean 'denoiser\.depth'\?$",
        ),
        ({"denoiser": {"depth": "3"}}, r"^denoiser\.depth: expected int, got '3'$"),
        ({"denoiser": {"depth": 3.0}}, r"^denoiser\.depth: expected int, got 3\.0$"),
        ({"trained": 1}, r"^trained: expected bool, got 1$"),
        ({"denoiser": {"depth": True}}, r"^denoiser\.depth: expected int, got True$"),
        ({"codec": {"strides": [2, "4"]}}, r"^codec\.strides\[1\]: expected int, got '4'$"),
        ({"codec": {"strides": 4}}, r"^codec\.strides: expected a list, got 4$"),
        ({"codec": [1, 2]}, r"^codec: expected an object, got \[1, 2\]$"),
        ({"conditioning": {"video_encoder_path": 3}}, r"^conditioning\.video_encoder_path: "),
    ],
)
def test_bad_keys_and_types_are_one_line_errors_naming_the_key(data, message):
    with pytest.raises(ValueError, match=message) as info:
        from_dict(ModelConfig, data)
    assert "\n" not in str(info.value)


def test_fixed_length_tuples_check_their_length():
    with pytest.raises(ValueError, match=r"^betas: expected a list of 2 items"):
        from_dict(TrainConfig, {"betas": [0.9, 0.99, 0.999]})


def test_post_init_checks_name_the_section():
    with pytest.raises(ValueError, match=r"^teacher: tasks: unknown tasks \['X2Y'\]"):
        from_dict(RunConfig, {"teacher": {"tasks": ["T2A", "X2Y"]}})
    with pytest.raises(ValueError, match=r"unknown tasks"):
        TeacherTrainingConfig(tasks=("X2Y",))
    with pytest.raises(ValueError, match=r"^teacher: video_repeats must be >= 1, got 0"):
        from_dict(RunConfig, {"teacher": {"video_repeats": 0}})


def test_load_config_errors_name_the_file(tmp_path):
    path = tmp_path / "model.json"
    with pytest.raises(FileNotFoundError, match=r"model\.json: config file not found"):
        load_config(ModelConfig, path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"model\.json: not valid JSON"):
        load_config(ModelConfig, path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"model\.json: ModelConfig: expected a JSON object"):
        load_config(ModelConfig, path)
    path.write_text(json.dumps({"codec": {"latent_dims": 8}}))
    with pytest.raises(ValueError, match=r"^\S*model\.json: unknown key 'codec\.latent_dims'"):
        load_config(ModelConfig, path)


def test_run_config_errors_are_audiox_errors_naming_file_and_key(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"train": {"max_steps": "many"}}))
    with pytest.raises(AudioXError, match=r"run\.json: train\.max_steps: expected int"):
        load_run_config(path)
    path.write_text(json.dumps({"teacher": {"tasks": ["X2Y"]}}))
    with pytest.raises(AudioXError, match=r"run\.json: teacher: tasks: unknown tasks"):
        load_run_config(path)
