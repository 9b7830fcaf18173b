"""The `official` model: parameter count, generate, model dir round trip, converter and CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import Tensor

from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.official.config import OfficialConfig, official_preset
from audiox_turbo.official.sampling import official_velocity

FIXTURES = Path(
    os.environ.get(
        "AUDIOX_OFFICIAL_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "official" / "fixtures",
    )
)
needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "MANIFEST.json").is_file(),
    reason=f"official parity fixtures not found at {FIXTURES} (only in the project workspace)",
)
RELEASED_PARAMETERS = 2_710_741_752
RELEASED_TENSORS = 1384


def randomize_(module: torch.nn.Module, seed: int, std: float = 0.1) -> None:
    """Every floating parameter <- N(0, std²), so zero-initialised paths take effect."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def write_tiny_t5(path: Path, width: int) -> Path:
    """A T5 encoder dir (random tiny weights, word-level tokenizer with T5's pad/eos ids)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = ["a", "dog", "barks", "in", "the", "rain", "engine", "bell"]
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(vocab), d_model=width, d_kv=8, d_ff=64, num_layers=1, num_heads=4
    )
    T5EncoderModel(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_config() -> OfficialConfig:
    return official_preset("official_tiny")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_config):
    from audiox_turbo.official.model import OfficialAudioXTurbo
    from audiox_turbo.official.text import OfficialTextConditioner

    t5_dir = write_tiny_t5(tmp_path_factory.mktemp("t5"), tiny_config.cond_dim)
    text = OfficialTextConditioner.from_dir(t5_dir, tiny_config.text_max_tokens)
    model = OfficialAudioXTurbo(tiny_config, text)
    randomize_(model, seed=1)
    return model


def test_released_preset_on_meta_matches_the_released_state_dict() -> None:
    from audiox_turbo.official.convert import to_official_key
    from audiox_turbo.official.model import OfficialAudioXTurbo

    with torch.device("meta"):
        model = OfficialAudioXTurbo(official_preset("official"))
    assert sum(p.numel() for p in model.parameters()) == RELEASED_PARAMETERS
    assert len(model.state_dict()) == RELEASED_TENSORS
    assert sum(p.numel() for p in model.denoiser.parameters()) == 2_217_621_229
    assert sum(p.numel() for p in model.fusion.parameters()) == 60_991_494
    shapes_file = FIXTURES.parent / "released_state_dict_shapes.json"
    if shapes_file.is_file():
        ours = {to_official_key(k): list(v.shape) for k, v in model.state_dict().items()}
        assert ours == json.loads(shapes_file.read_text())


def test_config_json_round_trip(tmp_path: Path, tiny_config: OfficialConfig) -> None:
    tiny_config.save(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["variant"] == "official"
    assert OfficialConfig.load(tmp_path / "config.json") == tiny_config
    (tmp_path / "bad.json").write_text('{"variant": "native"}')
    with pytest.raises(ModelLoadError, match=r"bad\.json"):
        OfficialConfig.load(tmp_path / "bad.json")


def test_released_duration_and_lengths() -> None:
    config = official_preset("official")
    assert config.num_samples == 483328
    assert config.sequence_length == 237 and config.head_dim == 24 and config.ffn_hidden == 4096
    assert config.accepts_duration(10.96) and config.accepts_duration(11.0)
    assert not config.accepts_duration(10.0)


def test_text_conditioner_zeroes_padding(tiny_model) -> None:
    tokens, mask = tiny_model.text_encoder(["a dog barks", ""])
    assert tokens.shape == (2, 128, 32) and mask.sum(1).tolist() == [4, 1]
    assert torch.all(tokens[~mask] == 0) and torch.all(tokens[mask].abs().sum(-1) > 0)


def test_generate_shape_determinism_and_rng_order(tiny_model, tiny_config) -> None:
    from audiox_turbo.flow.sampling import SamplerSettings
    from audiox_turbo.official.sampling import sample_official

    wav, sr = tiny_model.generate("a dog barks", seed=3, num_outputs=2)
    assert wav.shape == (2, 2, tiny_config.num_samples) and sr == 44100
    assert torch.isfinite(wav).all() and wav.abs().max() <= 1.0
    again, _ = tiny_model.generate("a dog barks", seed=3, num_outputs=2)
    assert torch.equal(wav, again)
    assert not torch.allclose(wav[0], wav[1])
    raw, _ = tiny_model.generate("a dog barks", seed=5, peak_normalize=False)
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        noise = torch.randn(1, 64, tiny_config.latent_frames, generator=g)
        cond = tiny_model.condition(["a dog barks"], None, None, None, g)
        student = SamplerSettings("student", 4)
        latents = sample_official(tiny_model.denoiser, noise, cond, student, g)
        expected = tiny_model.codec.decode(latents)
    torch.testing.assert_close(raw, expected)


def test_silent_audio_prompt_uses_a_cached_posterior_equal_to_encoding(tiny_config) -> None:
    from audiox_turbo.official.audio_prompt import OfficialAudioPromptConditioner

    conditioner = OfficialAudioPromptConditioner(tiny_config).eval()
    randomize_(conditioner, seed=11)
    silence = torch.zeros(2, tiny_config.codec.audio_channels, tiny_config.prompt_samples)

    def tokens(silent: bool) -> Tensor:
        with torch.no_grad():
            return conditioner(silence, torch.Generator().manual_seed(4), silent=silent)

    encoded = tokens(False)
    assert torch.equal(tokens(True), encoded)
    assert torch.equal(tokens(True), encoded)  # from the cache
    randomize_(conditioner.codec, seed=12)  # new encoder weights invalidate the cache
    assert torch.equal(tokens(True), tokens(False))
    assert not torch.equal(tokens(True), encoded)


def test_mono_vae_averages_a_stereo_prompt(tiny_config) -> None:
    from dataclasses import replace

    from audiox_turbo.official.audio_prompt import OfficialAudioPromptConditioner

    mono = replace(tiny_config, codec=replace(tiny_config.codec, audio_channels=1))
    conditioner = OfficialAudioPromptConditioner(mono).eval()
    randomize_(conditioner, seed=13)
    stereo = torch.randn(2, 2, mono.prompt_samples, generator=torch.Generator().manual_seed(1))

    def tokens(wav: Tensor) -> Tensor:
        with torch.no_grad():
            return conditioner(wav, torch.Generator().manual_seed(4))

    assert torch.equal(tokens(stereo), tokens(stereo.mean(dim=1, keepdim=True)))
    assert not torch.allclose(tokens(stereo), tokens(stereo[:, :1]))


@pytest.mark.parametrize("silent", [False, True])
def test_prompt_bottleneck_noise_is_drawn_once_for_the_batch(tiny_config, silent) -> None:
    """A latent of 3 × 7 = 21 values per item: one draw of (2,3,7) is not two draws of (1,3,7)."""
    from dataclasses import replace

    from audiox_turbo.official.audio_prompt import OfficialAudioPromptConditioner

    odd = replace(
        tiny_config,
        codec=replace(tiny_config.codec, latent_dim=3),
        prompt_samples=7 * tiny_config.codec.downsampling,
        prompt_latent_frames=7,
    )
    conditioner = OfficialAudioPromptConditioner(odd).eval()
    randomize_(conditioner, seed=14)
    shape = (2, 2, odd.prompt_samples)
    wav = torch.zeros(shape) if silent else torch.randn(shape, generator=torch.Generator())
    with torch.no_grad():
        latents = conditioner.encode(wav, torch.Generator().manual_seed(6), silent=silent)
        posteriors = [conditioner.posterior(item) for item in wav.split(1)]
        mean = torch.cat([m for m, _ in posteriors])
        std = torch.cat([s for _, s in posteriors])
    assert latents.shape == (2, 3, 7)
    g = torch.Generator().manual_seed(6)
    torch.testing.assert_close(latents, mean + std * torch.randn(2, 3, 7, generator=g))
    g = torch.Generator().manual_seed(6)
    per_item = torch.cat([torch.randn(1, 3, 7, generator=g) for _ in range(2)])
    assert not torch.allclose(latents, mean + std * per_item)


def test_generate_with_video_sync_and_audio(tiny_model, tiny_config) -> None:
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (7, 3, 48, 40), generator=g, dtype=torch.uint8)
    sync = torch.randn(240, 32, generator=g)
    prompt = torch.randn(1, 300, generator=g) * 0.5
    base, _ = tiny_model.generate("rain", seed=1, peak_normalize=False)
    zero_video, _ = tiny_model.generate(
        "rain", video_frames=torch.zeros_like(frames), seed=1, peak_normalize=False
    )
    assert torch.equal(base, zero_video)
    with_video, _ = tiny_model.generate(
        "rain", video_frames=frames, sync_features=sync, audio=prompt, seed=1
    )
    assert with_video.shape == base.shape and torch.isfinite(with_video).all()
    assert not torch.allclose(with_video, base / base.abs().max())


def test_generate_rejects_other_durations_and_guided_dmd(tiny_model, tiny_config) -> None:
    with pytest.raises(AudioXError, match="generates exactly"):
        tiny_model.generate("rain", duration=5.0)
    with pytest.raises(AudioXError, match="cfg"):
        tiny_model.generate("rain", cfg=4.5)
    wav, _ = tiny_model.generate("rain", duration=tiny_config.duration, sampler="euler", cfg=3.0)
    assert wav.shape[-1] == tiny_config.num_samples


def test_save_and_load_round_trip(tmp_path: Path, tiny_model) -> None:
    from audiox_turbo.official.model import OfficialAudioXTurbo, official_variant

    tiny_model.save_pretrained(tmp_path / "m")
    assert official_variant(tmp_path / "m" / "config.json")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "config.json",
        "denoiser.safetensors",
        "fusion.safetensors",
        "conditioning.safetensors",
        "codec.safetensors",
        "text_encoder",
    }
    loaded = OfficialAudioXTurbo.from_pretrained(tmp_path / "m")
    expected, _ = tiny_model.generate("a dog", seed=2)
    actual, _ = loaded.generate("a dog", seed=2)
    torch.testing.assert_close(actual, expected)
    (tmp_path / "m" / "fusion.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"fusion\.safetensors"):
        OfficialAudioXTurbo.from_pretrained(tmp_path / "m")


def write_official_files(root: Path, model, dit_state: dict[str, Tensor]) -> dict[str, Path]:
    """Official-layout files for `model`: student ckpt (Lightning-style nesting and prefixes,
    no CLIP), vae.ckpt, and a CLIP HF dir; the DiT/MAF tensors are `dit_state`."""
    from audiox_turbo.official.convert import to_official_key

    official = {to_official_key(k): v.clone() for k, v in model.state_dict().items()}
    official.update(dit_state)
    clip_prefix = "conditioner.conditioners.video_prompt.visual_encoder_model."
    student = {
        f"student.{k}": v.clone() for k, v in official.items() if not k.startswith(clip_prefix)
    }
    student["student.pretransform.model.decoder.layers.0.bias"] += 1.0
    student["teacher.model.model.preprocess_conv.weight"] = torch.zeros(64, 64, 1)
    vae = {k[19:]: v for k, v in official.items() if k.startswith("pretransform.model.")}
    paths = {"ckpt": root / "audiox_turbo.ckpt", "vae": root / "vae.ckpt", "clip": root / "clip"}
    torch.save({"state_dict": student, "global_step": 7}, paths["ckpt"])
    torch.save({"state_dict": vae}, paths["vae"])
    model.video.visual_encoder_model.save_pretrained(paths["clip"])
    return paths


@needs_fixtures
def test_convert_fixture_shards_round_trip(tmp_path: Path, tiny_model, tiny_config) -> None:
    from safetensors.torch import load_file

    from audiox_turbo.official.convert import convert_official, read_state_dict
    from audiox_turbo.official.model import OfficialAudioXTurbo

    shards = read_state_dict(FIXTURES / "mmdit_tiny_state_dict.index.json")
    assert len(shards) == 71
    paths = write_official_files(tmp_path, tiny_model, shards)
    t5_dir = tmp_path / "t5"
    tiny_model.text_encoder.encoder.save_pretrained(t5_dir)
    tiny_model.text_encoder.tokenizer.save_pretrained(t5_dir)
    out = tmp_path / "converted"
    report = convert_official(
        paths["ckpt"], paths["vae"], out, t5=t5_dir, clip=paths["clip"], config=tiny_config
    )
    assert report.unmatched == [
        "ckpt: teacher.model.model.preprocess_conv.weight (no such parameter)"
    ]
    loaded = OfficialAudioXTurbo.from_pretrained(out)
    codec = load_file(out / "codec.safetensors")
    torch.testing.assert_close(
        codec["decoder.layers.0.bias"], tiny_model.codec.decoder.layers[0].bias
    )
    io = load_file(FIXTURES / "mmdit_tiny_io.safetensors")
    with torch.no_grad():
        cond = loaded.fusion(io["cond_text"], io["cond_video"], io["cond_audio"])
        out_cfg6 = official_velocity(loaded.denoiser, cond, 6.0)(io["x"], io["t"])
    tol = 1e-4 * io["out_cfg6"].abs().max().item()
    assert (cond - io["maf_out_concat"]).abs().max() <= 1e-4
    assert (out_cfg6 - io["out_cfg6"]).abs().max() <= tol
    wav, _ = loaded.generate("a dog barks", seed=0)
    assert wav.shape == (1, 2, tiny_config.num_samples)


def test_convert_fails_on_missing_and_mismatched_keys(
    tmp_path: Path, tiny_model, tiny_config
) -> None:
    from audiox_turbo.official.convert import convert_official

    paths = write_official_files(tmp_path, tiny_model, {})
    with pytest.raises(ModelLoadError, match="pass --clip DIR"):
        convert_official(paths["ckpt"], paths["vae"], tmp_path / "a", config=tiny_config)
    state = torch.load(paths["ckpt"], weights_only=True)["state_dict"]
    del state["student.maf_block.norm1.bias"]
    state["student.model.model.preprocess_conv.weight"] = torch.zeros(3, 3)
    torch.save(state, paths["ckpt"])
    with pytest.raises(ModelLoadError, match="2 model tensors missing"):
        convert_official(
            paths["ckpt"], paths["vae"], tmp_path / "b", clip=paths["clip"], config=tiny_config
        )
    assert not (tmp_path / "b").exists()
    with pytest.raises(ModelLoadError, match=r"nope\.ckpt: checkpoint not found"):
        convert_official(tmp_path / "nope.ckpt", paths["vae"], tmp_path / "c", config=tiny_config)


def test_cli_convert_official(tmp_path: Path, tiny_model, tiny_config, monkeypatch) -> None:
    from typer.testing import CliRunner

    from audiox_turbo.cli import convert as cli
    from audiox_turbo.official import convert

    paths = write_official_files(tmp_path, tiny_model, {})
    real = convert.convert_official
    monkeypatch.setattr(
        convert, "convert_official", lambda *a, **k: real(*a, **k, config=tiny_config)
    )
    args = [
        "official",
        "--ckpt",
        str(paths["ckpt"]),
        "--vae",
        str(paths["vae"]),
        "--clip",
        str(paths["clip"]),
    ]
    result = CliRunner().invoke(cli.app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "unmatched ckpt: teacher.model.model.preprocess_conv.weight" in result.output
    assert json.loads((tmp_path / "out" / "config.json").read_text())["variant"] == "official"
    again = CliRunner().invoke(cli.app, [*args, "--out", str(tmp_path / "out")])
    assert isinstance(again.exception, ModelLoadError)


def test_pipeline_and_cli_dispatch_to_the_official_variant(
    tmp_path: Path, tiny_model, tiny_config, monkeypatch, capsys
) -> None:
    import sys

    import soundfile as sf

    from audiox_turbo import cli, load
    from audiox_turbo.official.pipeline import OfficialPipeline
    from audiox_turbo.pipeline import AudioXTurbo

    tiny_model.save_pretrained(tmp_path / "m")
    pipe = load(tmp_path / "m")
    assert isinstance(pipe, OfficialPipeline)
    with pytest.raises(ModelLoadError, match="official"):
        AudioXTurbo.from_pretrained(tmp_path / "m")
    out = pipe(text="a dog barks", seed=3)
    expected, sr = tiny_model.generate("a dog barks", seed=3)
    assert out.sample_rate == sr and torch.equal(out.waveforms, expected)
    assert out.nfe == 4
    with pytest.raises(AudioXError, match="exactly"):
        pipe(text="a dog barks", duration=5.0)
    with pytest.raises(AudioXError, match="whole 10 s clip"):
        pipe(text="x", audio=torch.zeros(2, 100), audio_mode="inpaint", span=(0.0, 1.0))
    wav_path = tmp_path / "o.wav"
    argv = ["audiox-turbo", "generate", "--model", str(tmp_path / "m"), "--text", "bell"]
    monkeypatch.setattr(sys, "argv", [*argv, "-o", str(wav_path)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code in (0, None), capsys.readouterr().err
    wav, sr = sf.read(wav_path)
    assert sr == 44100 and wav.shape == (tiny_config.num_samples, 2)


def test_bench_and_corrupt_files_on_an_official_dir(tmp_path: Path, tiny_model) -> None:
    from audiox_turbo.eval.bench import time_generation
    from audiox_turbo.loader import load
    from audiox_turbo.official.pipeline import load_sync_features

    tiny_model.save_pretrained(tmp_path / "m")
    pipe = load(tmp_path / "m")
    rows = time_generation(pipe, [(4, 1.0), (2, 6.0)], repeats=1)
    assert [r.nfe for r in rows] == [4, 4]
    assert rows[0].duration_s == pytest.approx(pipe.config.duration)
    with pytest.raises(AudioXError, match="steps must be"):
        pipe(text="x", steps=0)
    garbage = tmp_path / "sync.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(AudioXError, match=r"sync\.safetensors: unreadable"):
        load_sync_features(garbage)
    (tmp_path / "m" / "denoiser.safetensors").write_bytes(b"\x00" * 32)
    with pytest.raises(ModelLoadError, match=r"denoiser\.safetensors: unreadable"):
        load(tmp_path / "m")
