"""The generation pipeline on the tiny preset: durations, NFE, round trips, prompts, errors."""

from __future__ import annotations

import json

import pytest
import torch

from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.pipeline import AudioXTurbo
from conftest import randomize_


@pytest.fixture(scope="module")
def pipe():
    p = AudioXTurbo.from_preset("tiny", seed=0)
    randomize_(p.denoiser, seed=3, std=0.05)
    randomize_(p.conditioner, seed=4, std=0.05)
    return p


@pytest.mark.parametrize("duration", [0.5, 3.7, 12.0])
def test_any_duration_gives_exact_sample_count(pipe, duration):
    out = pipe(text="a bell", duration=duration, steps=2, cfg=1.0, seed=0)
    assert out.waveforms.shape == (1, 1, round(duration * 16000))
    assert out.sample_rate == 16000
    assert torch.isfinite(out.waveforms).all() and out.waveforms.abs().max() <= 1


def test_student_uses_4_nfe_and_teacher_2n(pipe):
    student = pipe(text="rain", duration=1.0, steps=4, cfg=1.0, method="student", seed=0)
    teacher = pipe(text="rain", duration=1.0, steps=7, cfg=3.0, method="euler", seed=0)
    assert student.nfe == 4
    assert teacher.nfe == 14


def test_seed_determinism_and_conditioning(pipe):
    a = pipe(text="a dog barking", duration=1.0, steps=3, cfg=2.0, seed=5).waveforms
    b = pipe(text="a dog barking", duration=1.0, steps=3, cfg=2.0, seed=5).waveforms
    c = pipe(text="a dog barking", duration=1.0, steps=3, cfg=2.0, seed=6).waveforms
    d = pipe(text="an organ chord", duration=1.0, steps=3, cfg=2.0, seed=5).waveforms
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, d)


def test_batched_prompts_and_num_outputs(pipe):
    out = pipe(
        text=["a siren", "wind", None], duration=0.8, steps=2, cfg=1.0, seed=1, num_outputs=2
    )
    assert out.waveforms.shape == (6, 1, 12800)
    single = pipe(text="a siren", duration=0.8, steps=2, cfg=1.0, seed=1, num_outputs=2)
    assert single.waveforms.shape == (2, 1, 12800)


def test_save_load_round_trip_is_bit_identical(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == [
        "codec.safetensors",
        "conditioning.safetensors",
        "config.json",
        "denoiser.safetensors",
    ]
    loaded = AudioXTurbo.from_pretrained(tmp_path / "m")
    kwargs = dict(text="thunder", duration=1.0, steps=3, cfg=2.5, seed=9)
    assert torch.equal(pipe(**kwargs).waveforms, loaded(**kwargs).waveforms)
    pipe.save_pretrained(tmp_path / "m")  # overwriting an existing dir works
    assert AudioXTurbo.from_pretrained(tmp_path / "m").config == pipe.config


def test_audio_tensor_prompt_inpaint_keeps_unmasked_region(pipe):
    sr = 16000
    t = torch.arange(2 * sr) / sr
    wav = 0.5 * torch.sin(2 * torch.pi * 220 * t).unsqueeze(0)
    with torch.no_grad():
        latents = pipe.codec.encode(wav.unsqueeze(0), sample=False)
        round_trip = pipe.codec.decode(latents)[0, :, : 2 * sr]
    out = pipe(audio=wav, audio_mode="inpaint", span=(0.8, 1.2), duration=2.0, steps=2, cfg=1.0)
    gen = out.waveforms[0]
    margin = 12 * pipe.config.codec.downsampling  # the decoder's receptive field
    keep = torch.zeros(2 * sr, dtype=torch.bool)
    keep[: int(0.8 * sr) - margin] = True
    keep[int(1.2 * sr) + margin :] = True
    err = (gen[:, keep] - round_trip.clamp(-1, 1)[:, keep]).abs().max()
    assert err < 1e-4
    assert (gen[:, ~keep] - round_trip[:, ~keep]).abs().max() > 1e-3


def test_bad_arguments_raise_clear_errors(pipe):
    with pytest.raises(AudioXError, match="positive"):
        pipe(text="x", duration=0)
    with pytest.raises(AudioXError, match="maximum"):
        pipe(text="x", duration=61)
    with pytest.raises(AudioXError, match="inpaint"):
        pipe(audio=torch.zeros(1, 1600) + 0.1, audio_mode="inpaint", duration=1.0)
    with pytest.raises(AudioXError, match="unknown preset"):
        AudioXTurbo.from_preset("huge")
    with pytest.raises(AudioXError, match="different lengths"):
        pipe(text=["a", "b"], video=[None, None, None], duration=1.0)


def test_model_dir_errors(pipe, tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        AudioXTurbo.from_pretrained(tmp_path / "nope")
    pipe.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "codec.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"codec\.safetensors: missing"):
        AudioXTurbo.from_pretrained(tmp_path / "m")
    pipe.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["denoiser"]["dim"] = 64
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="do not match"):
        AudioXTurbo.from_pretrained(tmp_path / "m")


def test_video_tensor_prompt_uint8_and_float_agree(pipe):
    frames = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8)
    kwargs = dict(duration=1.0, steps=2, cfg=1.0, seed=2)
    a = pipe(video=frames, **kwargs).waveforms
    b = pipe(video=frames.float() / 255, **kwargs).waveforms
    none = pipe(**kwargs).waveforms
    torch.testing.assert_close(a, b, atol=2e-3, rtol=0)
    assert (a - none).abs().max() > 1e-4


def test_cfg_zero_is_the_unconditional_prediction(pipe):
    kwargs = dict(duration=0.5, steps=2, seed=4, method="euler")
    guided_zero = pipe(text="a siren", cfg=0.0, **kwargs).waveforms
    unconditional = pipe(text=None, cfg=1.0, **kwargs).waveforms
    torch.testing.assert_close(guided_zero, unconditional, atol=1e-5, rtol=0)


def test_seed_none_leaves_global_rng_alone_and_reports_seed(pipe):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    out = pipe(text="wind", duration=0.3, steps=1, cfg=1.0)
    assert torch.equal(torch.rand(3), expected)
    again = pipe(text="wind", duration=0.3, steps=1, cfg=1.0, seed=out.seed)
    assert torch.equal(out.waveforms, again.waveforms)


def test_student_method_on_a_teacher_defaults_to_4_steps_without_cfg(pipe):
    out = pipe(text="rain", duration=0.5, method="student", seed=0)
    assert out.nfe == 4
    heun = pipe(text="rain", duration=0.5, method="heun", steps=3, cfg=1.0, seed=0)
    assert heun.nfe == 5


def test_audio_modes_continue_and_reference(pipe):
    wav = 0.3 * torch.sin(torch.arange(8000) / 5.0).unsqueeze(0)
    kwargs = dict(duration=1.0, steps=2, cfg=1.0, seed=1)
    cont = pipe(audio=wav, audio_mode="continue", **kwargs).waveforms
    ref = pipe(audio=wav, audio_mode="reference", **kwargs).waveforms
    assert cont.shape == ref.shape == (1, 1, 16000)
    assert (cont - ref).abs().max() > 1e-4
    with pytest.raises(AudioXError, match="channels, samples"):
        pipe(audio=torch.zeros(1, 1, 8000), **kwargs)


def test_invalid_but_parseable_config_is_a_load_error(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["denoiser"]["heads"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"config\.json: invalid config"):
        AudioXTurbo.from_pretrained(tmp_path / "m")
