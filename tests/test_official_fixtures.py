"""Parity of the `official` variant with the official AudioX-Turbo classes.

Every tensor of `../shared/official/fixtures` (produced by the official code, see its README)
is reproduced within max|a−b| ≤ 1e-4·max(1, max|b|) in float32 on CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import Tensor

from audiox_turbo.config import CodecConfig
from audiox_turbo.official.config import official_preset

FIXTURES = Path(
    os.environ.get(
        "AUDIOX_OFFICIAL_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "official" / "fixtures",
    )
)
pytestmark = pytest.mark.skipif(
    not (FIXTURES / "MANIFEST.json").is_file(),
    reason=f"official parity fixtures not found at {FIXTURES} (only in the project workspace)",
)
TINY_VAE = CodecConfig(channels=8, c_mults=(1, 2), strides=(2, 4), latent_dim=4)


def load(name: str) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(FIXTURES / f"{name}.safetensors")


def assert_close(actual: Tensor, expected: Tensor) -> None:
    assert actual.shape == expected.shape
    tol = 1e-4 * max(1.0, expected.abs().max().item())
    err = (actual.detach() - expected).abs().max().item()
    assert err <= tol, f"max error {err:.3g} > {tol:.3g}"


def strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def tiny_dit():
    """(MMDiT, MAF, io) of the tiny official model with the fixture weights loaded strictly."""
    from audiox_turbo.official.convert import read_state_dict
    from audiox_turbo.official.fusion import OfficialFusion
    from audiox_turbo.official.mmdit import OfficialMMDiT

    config = official_preset("official_tiny")
    state = read_state_dict(FIXTURES / "mmdit_tiny_state_dict.index.json")
    dit, maf = OfficialMMDiT(config).eval(), OfficialFusion(config).eval()
    dit.load_state_dict(strip(state, "model.model."), strict=True)
    maf.load_state_dict(strip(state, "maf_block."), strict=True)
    return dit, maf, load("mmdit_tiny_io")


@torch.no_grad()
def test_vae_encoder_bottleneck_decoder() -> None:
    from audiox_turbo.codec.oobleck import OobleckVAE

    vae = OobleckVAE(TINY_VAE).eval()
    vae.load_state_dict(load("vae_tiny_state_dict"), strict=True)
    io = load("vae_tiny_io")
    assert_close(vae.encoder(io["waveform"]), io["encoder_out_pre_bottleneck"])
    mean, std = vae.encode_posterior(io["waveform"])
    assert_close(mean, io["bottleneck_mean"])
    assert_close(std, io["bottleneck_std"])
    sample = vae.encode(io["waveform"], generator=torch.Generator().manual_seed(1003))
    assert_close(sample, io["bottleneck_sample"])
    assert_close(vae.decode(io["bottleneck_mean"]), io["decoder_out_from_mean"])


@torch.no_grad()
def test_temporal_transformer() -> None:
    from audiox_turbo.official.temporal import TemporalTransformer

    fixture = load("sa_transformer_tiny")
    model = TemporalTransformer(dim=32, depth=2, heads=4, head_dim=16, mlp_dim=64).eval()
    model.load_state_dict(strip(fixture, "param."), strict=True)
    assert_close(model(fixture["input"]), fixture["output"])


@torch.no_grad()
def test_video_conditioner_after_clip() -> None:
    from audiox_turbo.official.video import OfficialVideoConditioner

    config = official_preset("official", video_frames=10, temporal_depth=0)
    cond = OfficialVideoConditioner(config, clip=False).eval()
    cond.load_state_dict(load("videocond_state_dict"), strict=True)
    io, hidden = load("videocond_io"), load("videocond_clip_hidden_in")["clip_last_hidden_state"]
    is_zero = (io["video_tensors_raw"] == 0).flatten(1).all(dim=1)
    assert not is_zero.any()
    assert_close(cond.from_clip_features(hidden, is_zero, io["sync_features"]), io["out"])
    empty = cond.from_clip_features(hidden, torch.tensor([True]), io["sync_features"])
    assert torch.equal(empty, cond.empty_visual_feat)


@torch.no_grad()
def test_audio_prompt_conditioner_given_recorded_noise() -> None:
    from audiox_turbo.official.audio_prompt import OfficialAudioPromptConditioner

    config = official_preset(
        "official_tiny", codec=TINY_VAE, prompt_mask_min=0.0, prompt_mask_max=0.0
    )
    cond = OfficialAudioPromptConditioner(config).eval()
    fixture = load("audiocond_tiny")
    state = strip(fixture, "param.")
    state.update({f"codec.{k}": v for k, v in load("vae_tiny_state_dict").items()})
    cond.load_state_dict(state, strict=True)
    latent = cond.encode(fixture["audio_prompt"], torch.Generator().manual_seed(6002))
    assert_close(latent, fixture["sampled_latent"])
    out = cond(fixture["audio_prompt"], torch.Generator().manual_seed(6002))
    assert_close(out, fixture["out"])


@torch.no_grad()
def test_maf_argument_order_and_output(tiny_dit) -> None:
    _, maf, io = tiny_dit
    fused = maf(io["cond_text"], io["cond_video"], io["cond_audio"])
    assert_close(fused, io["maf_out_concat"])
    swapped = maf(io["cond_video"], io["cond_text"], io["cond_audio"])
    assert (swapped - io["maf_out_concat"]).abs().max() > 1e-2


@pytest.mark.parametrize(
    ("cfg_scale", "scale_phi", "key"),
    [(1.0, 0.0, "out_cfg1"), (6.0, 0.0, "out_cfg6"), (6.0, 0.7, "out_cfg6_scale_phi_0p7")],
)
@torch.no_grad()
def test_mmdit_outputs(tiny_dit, cfg_scale: float, scale_phi: float, key: str) -> None:
    dit, _, io = tiny_dit
    from audiox_turbo.official.sampling import official_velocity

    velocity = official_velocity(dit, io["maf_out_concat"], cfg_scale, scale_phi)
    out = velocity(io["x"], io["t"])
    assert_close(out, io[key])


@torch.no_grad()
def test_mmdit_null_branch_is_zero_condition(tiny_dit) -> None:
    dit, _, io = tiny_dit
    out = dit(io["x"], io["t"], torch.zeros_like(io["maf_out_concat"]))
    assert_close(out, io["out_uncond_zero_cond"])


@torch.no_grad()
def test_mmdit_intermediates(tiny_dit) -> None:
    dit, maf, io = tiny_dit
    ref = load("mmdit_tiny_intermediates")
    seen: dict[str, Tensor] = {}

    def record(name: str):
        def hook(_module, _inputs, output) -> None:
            seen[name] = output[:1]

        return hook

    transformer = dit.transformer
    modules = {
        "maf_gates": maf.gating_network,
        "timestep_embed": dit.to_timestep_embed,
        "mm_tokens_seq_resampled_BxDxN": transformer.proj_mm_seq_len,
        "project_out_out": transformer.project_out,
    }
    for i, layer in enumerate(transformer.layers):
        modules[f"block{i}_cross_attn_out_pos0"] = layer.cross_attn
        modules[f"block{i}_out"] = layer
    handles = [m.register_forward_hook(record(name)) for name, m in modules.items()]
    try:
        dit(io["x"], io["t"], maf(io["cond_text"], io["cond_video"], io["cond_audio"]))
    finally:
        for handle in handles:
            handle.remove()
    for name in modules:
        assert_close(seen[name], ref[name])
    cos, sin = transformer.rope_table(237, torch.device("cpu"))
    assert_close(cos, ref["latent_rot_buffer"][..., 0, 0])
    assert_close(sin, ref["latent_rot_buffer"][..., 1, 0])


@torch.no_grad()
def test_dmd_four_step_run(tiny_dit) -> None:
    from audiox_turbo.flow.sampling import SamplerSettings
    from audiox_turbo.official.sampling import sample_official

    dit, _, io = tiny_dit
    run = load("dmd4_tiny_run")
    cond = io["maf_out_concat"][:1]
    inputs: list[Tensor] = []

    def record(_module, args, _kwargs, _output) -> None:
        inputs.append(args[0])

    handle = dit.register_forward_hook(record, with_kwargs=True)
    try:
        g = torch.Generator().manual_seed(3001)
        final = sample_official(dit, run["noise_z1"], cond, SamplerSettings("student", 4), g)
    finally:
        handle.remove()
    for i, z_t in enumerate(inputs):
        assert_close(z_t, run[f"step{i}_z_t"])
    assert_close(final, run["final_latents"])


@torch.no_grad()
def test_euler_cfg6_run(tiny_dit) -> None:
    from audiox_turbo.flow.sampling import SamplerSettings
    from audiox_turbo.official.sampling import sample_official

    dit, _, io = tiny_dit
    run = load("euler4_cfg6_tiny_run")
    euler = SamplerSettings("euler", 4, 6.0)
    final = sample_official(dit, run["noise_z1"], io["maf_out_concat"][:1], euler)
    assert_close(final, run["final_latents"])
