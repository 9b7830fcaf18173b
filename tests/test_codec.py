"""Oobleck VAE: layout parity with the official state dict, numerics, chunked decoding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from audiox_turbo.codec import (
    OobleckVAE,
    SnakeBeta,
    WeightNormConv1d,
    WeightNormConvTranspose1d,
    build_codec,
    kl_divergence,
    load_oobleck_checkpoint,
)
from audiox_turbo.config import CodecConfig, preset
from audiox_turbo.errors import ModelLoadError

OFFICIAL = Path("/work/shared/official")
FIXTURES = OFFICIAL / "fixtures"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"official parity fixtures not found at {FIXTURES}"
)
# The tiny official VAE of fixtures/README.md §1.
FIXTURE_CONFIG = CodecConfig(
    sample_rate=44100, audio_channels=2, channels=8, c_mults=(1, 2), strides=(2, 4), latent_dim=4
)


def _randomise_snakes(vae: OobleckVAE, seed: int) -> None:
    """Give every SnakeBeta non-zero log-params so it is not close to identity-plus-sin²."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, SnakeBeta):
                module.alpha.normal_(0.0, 0.3, generator=gen)
                module.beta.normal_(0.0, 0.3, generator=gen)


@pytest.mark.parametrize("name", ["tiny", "demo"])
def test_shapes_for_presets(name: str) -> None:
    cfg = preset(name).codec
    torch.manual_seed(0)
    vae = build_codec(cfg).eval()
    samples = 3 * cfg.downsampling + 5  # not a multiple: right-padded to 4 frames
    wav = torch.randn(1, cfg.audio_channels, samples) * 0.3
    with torch.no_grad():
        mean, std = vae.encode_posterior(wav)
        z = vae.encode(wav)
        out = vae.decode(z)
    frames = cfg.latent_frames(samples)
    assert frames == 4
    assert mean.shape == std.shape == z.shape == (1, cfg.latent_dim, frames)
    assert out.shape == (1, cfg.audio_channels, frames * cfg.downsampling)
    assert bool((std >= 1e-4).all()) and bool(out.isfinite().all())


def test_base_parameter_count_and_released_layout() -> None:
    with torch.device("meta"):
        vae = OobleckVAE(preset("base").codec)
    assert sum(p.numel() for p in vae.parameters()) == 156_112_514
    shapes_file = OFFICIAL / "released_state_dict_shapes.json"
    if not shapes_file.is_file():
        pytest.skip(f"{shapes_file} not found")
    prefix = "pretransform.model."
    released = {
        k[len(prefix) :]: tuple(v)
        for k, v in json.loads(shapes_file.read_text()).items()
        if k.startswith(prefix)
    }
    assert {k: tuple(v.shape) for k, v in vae.state_dict().items()} == released


def test_odd_stride_rejected() -> None:
    with pytest.raises(ValueError, match="even"):
        OobleckVAE(CodecConfig(channels=2, c_mults=(1,), strides=(3,), latent_dim=2))


def test_wrong_channel_count_rejected() -> None:
    vae = OobleckVAE(preset("tiny").codec)
    with pytest.raises(ValueError, match="expected a waveform"):
        vae.encode(torch.zeros(1, 2, 128))


def test_weight_norm_effective_weight_matches_float64_reference() -> None:
    torch.manual_seed(1)
    conv = WeightNormConv1d(3, 5, 7, padding=3, dilation=1)
    tconv = WeightNormConvTranspose1d(5, 3, 8, stride=4, padding=2)
    with torch.no_grad():
        for m in (conv, tconv):
            m.weight_g.mul_(torch.rand_like(m.weight_g) + 0.5)  # g != ‖v‖
    assert tconv.weight_g.shape == (5, 1, 1)  # per *input* channel for the transpose
    for m in (conv, tconv):
        v = m.weight_v.detach().double()
        g = m.weight_g.detach().double()
        ref = torch.empty_like(v)
        for i in range(v.shape[0]):
            ref[i] = g[i, 0, 0] * v[i] / torch.sqrt((v[i] ** 2).sum())
        torch.testing.assert_close(m.weight().double(), ref, rtol=1e-6, atol=1e-7)
    x = torch.randn(2, 3, 40, dtype=torch.float64)
    ref_out = torch.nn.functional.conv1d(x, conv.weight().double(), conv.bias.double(), padding=3)
    torch.testing.assert_close(conv(x.float()).double(), ref_out, rtol=1e-5, atol=1e-5)
    y = tconv(torch.randn(2, 5, 10))
    assert y.shape == (2, 3, 40)


def test_fresh_weight_norm_starts_with_g_equal_norm_v() -> None:
    conv = WeightNormConv1d(4, 6, 3)
    torch.testing.assert_close(conv.weight(), conv.weight_v)


def test_snake_beta_matches_float64_reference() -> None:
    torch.manual_seed(2)
    snake = SnakeBeta(4)
    with torch.no_grad():
        snake.alpha.normal_(0, 0.5)
        snake.beta.normal_(0, 0.5)
    x = torch.randn(2, 4, 33, dtype=torch.float64) * 3
    a = snake.alpha.detach().double().exp()[None, :, None]
    b = snake.beta.detach().double().exp()[None, :, None]
    ref = x + 1.0 / (b + 1e-9) * torch.sin(a * x) ** 2
    torch.testing.assert_close(snake(x.float()).double(), ref, rtol=1e-5, atol=1e-5)


def test_kl_divergence_closed_form() -> None:
    torch.manual_seed(3)
    mean = torch.randn(2, 4, 5, dtype=torch.float64)
    std = torch.rand(2, 4, 5, dtype=torch.float64) + 0.1
    expected = 0.0
    for b in range(2):
        for t in range(5):
            for c in range(4):
                m, s = mean[b, c, t].item(), std[b, c, t].item()
                expected += m * m + s * s - 2.0 * math.log(s) - 1.0
    expected /= 2 * 5
    assert kl_divergence(mean, std).item() == pytest.approx(expected, rel=1e-10)
    assert kl_divergence(torch.zeros(1, 3, 2), torch.ones(1, 3, 2)).item() == 0.0


def test_encode_mean_mode_is_deterministic_and_sampling_is_seeded() -> None:
    cfg = preset("tiny").codec
    torch.manual_seed(4)
    vae = OobleckVAE(cfg).eval()
    wav = torch.randn(1, 1, 4 * cfg.downsampling) * 0.3
    with torch.no_grad():
        mean, std = vae.encode_posterior(wav)
        assert torch.equal(vae.encode(wav, sample=False), mean)
        z1 = vae.encode(wav, generator=torch.Generator().manual_seed(7))
        z2 = vae.encode(wav, generator=torch.Generator().manual_seed(7))
        z3 = vae.encode(wav, generator=torch.Generator().manual_seed(8))
    assert torch.equal(z1, z2)
    assert not torch.equal(z1, z3)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(z1, mean + std * eps)


def test_chunked_decode_equals_whole_with_bounded_windows() -> None:
    cfg = preset("tiny").codec
    torch.manual_seed(5)
    vae = OobleckVAE(cfg).eval()
    _randomise_snakes(vae, 6)
    frames, chunk, overlap = 300, 32, 16
    z = torch.randn(1, cfg.latent_dim, frames)
    window_lengths: list[int] = []
    handle = vae.decoder.register_forward_pre_hook(
        lambda _m, args: window_lengths.append(args[0].shape[-1])
    )
    with torch.no_grad():
        whole = vae.decode(z)
        window_lengths.clear()
        chunked = vae.decode_chunked(z, chunk_frames=chunk, overlap_frames=overlap)
    handle.remove()
    assert chunked.shape == whole.shape
    assert len(window_lengths) == -(-frames // chunk)
    assert max(window_lengths) <= chunk + 2 * overlap
    tol = 1e-4 * max(1.0, whole.abs().max().item())
    assert (chunked - whole).abs().max().item() <= tol


def test_chunked_decode_short_input_and_bad_arguments() -> None:
    vae = OobleckVAE(preset("tiny").codec).eval()
    z = torch.randn(1, 8, 5)
    with torch.no_grad():
        torch.testing.assert_close(vae.decode_chunked(z, chunk_frames=8), vae.decode(z))
    with pytest.raises(ValueError, match="chunk_frames"):
        vae.decode_chunked(z, chunk_frames=0)


@needs_fixtures
def test_official_tiny_state_dict_loads_strictly_and_reproduces_outputs() -> None:
    from safetensors.torch import load_file

    state = load_file(str(FIXTURES / "vae_tiny_state_dict.safetensors"))
    io = load_file(str(FIXTURES / "vae_tiny_io.safetensors"))
    listed = json.loads((FIXTURES / "vae_tiny_state_dict.json").read_text())["tensors"]
    vae = OobleckVAE(FIXTURE_CONFIG).eval()
    assert {k: list(v.shape) for k, v in vae.state_dict().items()} == {
        k: v["shape"] for k, v in listed.items()
    }
    vae.load_state_dict(state, strict=True)

    def close(a: torch.Tensor, b: torch.Tensor) -> None:
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 1e-4 * max(1.0, b.abs().max().item())

    with torch.no_grad():
        wav = io["waveform"]
        close(vae.encoder(wav), io["encoder_out_pre_bottleneck"])
        mean, std = vae.encode_posterior(wav)
        close(mean, io["bottleneck_mean"])
        close(std, io["bottleneck_std"])
        z = vae.encode(wav, generator=torch.Generator().manual_seed(1003))
        close(z, io["bottleneck_sample"])
        close(vae.decode(io["bottleneck_mean"]), io["decoder_out_from_mean"])


@needs_fixtures
def test_load_oobleck_checkpoint_formats(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    fixture = FIXTURES / "vae_tiny_state_dict.safetensors"
    state = load_file(str(fixture))
    ckpt = tmp_path / "vae.ckpt"
    torch.save({"state_dict": state}, ckpt)
    for path in (fixture, ckpt):
        vae = load_oobleck_checkpoint(path, FIXTURE_CONFIG)
        torch.testing.assert_close(
            vae.state_dict()["decoder.layers.0.weight_v"], state["decoder.layers.0.weight_v"]
        )
    with pytest.raises(ModelLoadError, match=r"vae\.ckpt.*do not match") as err:
        load_oobleck_checkpoint(ckpt, preset("tiny").codec)
    assert "\n" not in str(err.value)


def test_load_oobleck_checkpoint_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(ModelLoadError, match=r"nope\.ckpt"):
        load_oobleck_checkpoint(missing, preset("tiny").codec)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match=r"garbage\.safetensors"):
        load_oobleck_checkpoint(garbage, preset("tiny").codec)
