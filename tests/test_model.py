"""The native MMDiT denoiser and its layers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import audiox_turbo.model.denoiser as denoiser_module
from audiox_turbo.conditioning.beat import BEAT_FEATURES
from audiox_turbo.conditioning.conditioner import Conditions
from audiox_turbo.conditioning.tokens import ModalityTokens
from audiox_turbo.config import preset
from audiox_turbo.model.denoiser import Denoiser, video_frame_index
from audiox_turbo.model.layers import RMSNorm, TimestepEmbedding
from audiox_turbo.rope import apply_rope, rope_angles, rope_frequencies
from conftest import randomize_


def make_conditions(
    config, b: int, frames: int, text_tokens: int = 5, video_frames: int = 3, seed=0
):
    g = torch.Generator().manual_seed(seed)
    dim = config.conditioning.dim
    latent_dim = config.codec.latent_dim

    def stream(n: int) -> ModalityTokens:
        return ModalityTokens(
            torch.randn(b, n, dim, generator=g),
            torch.ones(b, n, dtype=torch.bool),
            torch.ones(b, dtype=torch.bool),
        )

    return Conditions(
        text=stream(text_tokens),
        video=stream(video_frames),
        audio=stream(frames),
        pooled=torch.randn(b, dim, generator=g),
        prompt=torch.randn(b, latent_dim + 1, frames, generator=g),
        beat=torch.randn(b, frames, BEAT_FEATURES, generator=g),
    )


@pytest.fixture
def denoiser(tiny_config):
    torch.manual_seed(0)
    return randomize_(Denoiser(tiny_config), seed=1).eval()


def test_rope_matches_complex_rotation_float64():
    head_dim, n = 8, 6
    freqs = rope_frequencies(head_dim, 10000.0).double()
    pos = torch.arange(n, dtype=torch.float64) * 1.5
    x = torch.randn(2, 3, n, head_dim, dtype=torch.float64)
    cos, sin = rope_angles(pos.unsqueeze(0), freqs)
    got = apply_rope(x, cos.double(), sin.double())
    z = torch.view_as_complex(x.reshape(2, 3, n, head_dim // 2, 2).contiguous())
    expected = torch.view_as_real(
        z * torch.polar(torch.ones_like(pos[:, None] * freqs), pos[:, None] * freqs)
    )
    torch.testing.assert_close(got, expected.flatten(-2), atol=1e-5, rtol=1e-5)


def test_rope_nan_position_is_identity_and_relative():
    freqs = rope_frequencies(8, 100.0)
    x = torch.randn(1, 1, 1, 8)
    cos, sin = rope_angles(torch.tensor([[float("nan")]]), freqs)
    torch.testing.assert_close(apply_rope(x, cos, sin), x)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    dots = []
    for offset in (0.0, 7.0):
        cq, sq = rope_angles(torch.tensor([[3.0 + offset]]), freqs)
        ck, sk = rope_angles(torch.tensor([[1.0 + offset]]), freqs)
        dots.append((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())
    torch.testing.assert_close(dots[0], dots[1], atol=1e-5, rtol=1e-5)


def test_rmsnorm_float64_reference():
    norm = RMSNorm(6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 6))
    x = torch.randn(4, 6)
    xd = x.double()
    ref = xd / torch.sqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight.double()
    torch.testing.assert_close(norm(x).double(), ref, atol=1e-6, rtol=1e-6)


def test_timestep_embedding_distinguishes_times():
    emb = TimestepEmbedding(16)
    feats = emb.sinusoidal(torch.tensor([0.0, 0.5, 1.0]))
    assert feats.shape == (3, 256)
    assert torch.allclose(feats[0, :128], torch.ones(128))
    assert (feats[1] - feats[2]).abs().max() > 0.1
    assert emb(torch.rand(3)).shape == (3, 16)


def test_video_frame_index_follows_time():
    index = video_frame_index(frames=10, latent_rate=2.0, video_frames=4, fps=1.0)
    # latent frame j is centred at (j + 0.5) / 2 s; the frame on screen is floor(t · 1 fps)
    assert index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3, 3]


def test_fresh_denoiser_outputs_zero(tiny_config):
    model = Denoiser(tiny_config)
    cond = make_conditions(tiny_config, 2, 9)
    v = model(torch.randn(2, 8, 9), torch.rand(2), cond)
    assert torch.equal(v, torch.zeros_like(v))


@pytest.mark.parametrize("frames", [1, 7, 40])
def test_any_length_and_dtype(denoiser, tiny_config, frames):
    cond = make_conditions(tiny_config, 2, frames)
    v = denoiser(torch.randn(2, 8, frames), torch.rand(2), cond)
    assert v.shape == (2, 8, frames) and v.dtype == torch.float32
    assert torch.isfinite(v).all() and v.abs().max() > 0


def test_text_padding_does_not_change_output(denoiser, tiny_config):
    cond = make_conditions(tiny_config, 2, 12)
    x, t = torch.randn(2, 8, 12), torch.rand(2)
    ref = denoiser(x, t, cond)
    text = cond.text
    padded = ModalityTokens(
        torch.cat([text.tokens, 100 * torch.randn(2, 4, text.tokens.shape[-1])], 1),
        torch.cat([text.mask, torch.zeros(2, 4, dtype=torch.bool)], 1),
        text.present,
    )
    cond.text = padded
    torch.testing.assert_close(denoiser(x, t, cond), ref, atol=1e-5, rtol=1e-5)
    cond.text = ModalityTokens(100 * torch.randn_like(text.tokens), text.mask, text.present)
    assert (denoiser(x, t, cond) - ref).abs().max() > 1e-3


def test_masked_latent_frames_are_ignored(denoiser, tiny_config):
    frames, extra = 10, 6
    cond = make_conditions(tiny_config, 1, frames + extra)
    x, t = torch.randn(1, 8, frames + extra), torch.rand(1)
    mask = torch.zeros(1, frames + extra, dtype=torch.bool)
    mask[:, :frames] = True
    out = denoiser(x, t, cond, x_mask=mask)
    x2 = x.clone()
    x2[..., frames:] = 50 * torch.randn(1, 8, extra)
    out2 = denoiser(x2, t, cond, x_mask=mask)
    torch.testing.assert_close(out[..., :frames], out2[..., :frames], atol=1e-5, rtol=1e-5)


def test_conditions_matter_and_determinism(denoiser, tiny_config):
    x, t = torch.randn(2, 8, 16), torch.rand(2)
    a = denoiser(x, t, make_conditions(tiny_config, 2, 16, seed=0))
    b = denoiser(x, t, make_conditions(tiny_config, 2, 16, seed=0))
    c = denoiser(x, t, make_conditions(tiny_config, 2, 16, seed=1))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def first_item(cond: Conditions) -> Conditions:
    def cut(m: ModalityTokens) -> ModalityTokens:
        return ModalityTokens(m.tokens[:1], m.mask[:1], m.present[:1])

    return Conditions(
        text=cut(cond.text),
        video=cut(cond.video),
        audio=cut(cond.audio),
        pooled=cond.pooled[:1],
        prompt=cond.prompt[:1],
        beat=cond.beat[:1],
    )


def test_batch_items_are_independent(denoiser, tiny_config):
    cond = make_conditions(tiny_config, 2, 11)
    x, t = torch.randn(2, 8, 11), torch.rand(2)
    both = denoiser(x, t, cond)
    one = denoiser(x[:1], t[:1], first_item(cond))
    torch.testing.assert_close(one, both[:1], atol=1e-5, rtol=1e-5)


def test_features_for_discriminator(denoiser, tiny_config):
    cond = make_conditions(tiny_config, 2, 6)
    _, feats = denoiser(torch.randn(2, 8, 6), torch.rand(2), cond, return_features=True)
    assert len(feats) == tiny_config.denoiser.depth
    assert all(f.shape == (2, 6, tiny_config.denoiser.dim) for f in feats)


def test_base_denoiser_parameter_count():
    config = preset("base")
    with torch.device("meta"):
        model = Denoiser(config)
    count = sum(p.numel() for p in model.parameters())
    # embed 1536, depth 24, 3 streams per block (last block: context streams pre-only)
    assert count == BASE_DENOISER_PARAMS, f"{count:,}"


BASE_DENOISER_PARAMS = 3_013_985_344


def stream_lengths(denoiser: Denoiser) -> dict[str, list[int]]:
    """Tokens entering the text and video streams, per forward (hooks on their input layers)."""
    seen: dict[str, list[int]] = {"text": [], "video": []}
    for name in seen:
        layer = getattr(denoiser, f"{name}_in")
        layer.register_forward_hook(lambda _m, args, _o, n=name: seen[n].append(args[0].shape[1]))
    return seen


def uncut(monkeypatch) -> None:
    """Streams keep every token (the reference the cut ones must equal)."""
    monkeypatch.setattr(denoiser_module, "attended_length", lambda mask: mask.shape[1])


def test_streams_are_cut_after_the_last_attended_token(denoiser, tiny_config, monkeypatch):
    cond = make_conditions(tiny_config, 2, 9, text_tokens=6).to("cpu", torch.float64)
    cond.text.mask[0, 3:] = False
    cond.text.mask[1, 2:] = False
    x, t = torch.randn(2, 8, 9, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    denoiser = denoiser.double()
    seen = stream_lengths(denoiser)
    cut = denoiser(x, t, cond)
    assert seen == {"text": [3], "video": [3]}
    uncut(monkeypatch)
    torch.testing.assert_close(denoiser(x, t, cond), cut, atol=1e-12, rtol=1e-12)
    assert seen == {"text": [3, 6], "video": [3, 3]}


@pytest.mark.parametrize("attend_absent", [True, False])
def test_absent_text_and_video_are_hidden_unless_attended(tiny_config, attend_absent, monkeypatch):
    denoiser_config = dataclasses.replace(tiny_config.denoiser, attend_absent=attend_absent)
    config = dataclasses.replace(tiny_config, denoiser=denoiser_config)
    torch.manual_seed(0)
    denoiser = randomize_(Denoiser(config), seed=1).double().eval()
    cond = make_conditions(config, 2, 9).to("cpu", torch.float64)
    cond.text.present[1] = False
    cond.video.present[:] = False
    x, t = torch.randn(2, 8, 9, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    seen = stream_lengths(denoiser)
    ref = denoiser(x, t, cond)
    assert seen["video"] == [0 if not attend_absent else 3]
    other = make_conditions(config, 2, 9, seed=5).to("cpu", torch.float64)
    cond.text = ModalityTokens(other.text.tokens, cond.text.mask, cond.text.present)
    changed = denoiser(x, t, cond)
    moved = (changed[1] - ref[1]).abs().max()
    assert (moved > 1e-3) if attend_absent else (moved == 0)
    uncut(monkeypatch)
    torch.testing.assert_close(denoiser(x, t, cond), changed, atol=1e-12, rtol=1e-12)
