"""Multimodal Adaptive Fusion and the attention layers it is built from."""

from __future__ import annotations

import math

import pytest
import torch

from audiox_turbo.conditioning.fusion import MultimodalAdaptiveFusion
from audiox_turbo.conditioning.layers import masked_attention, rope_sequence
from audiox_turbo.conditioning.tokens import ModalityTokens

DIM, HEADS = 16, 2


def make_fusion(seed: int = 0) -> MultimodalAdaptiveFusion:
    torch.manual_seed(seed)
    return MultimodalAdaptiveFusion(DIM, HEADS, experts=4, layers=1)


def make_streams(seed: int = 1, batch: int = 3) -> dict[str, ModalityTokens]:
    g = torch.Generator().manual_seed(seed)
    text_mask = torch.zeros(batch, 6, dtype=torch.bool)
    for i in range(batch):
        text_mask[i, : 2 + i] = True
    text = torch.randn(batch, 6, DIM, generator=g) * text_mask[..., None]
    return {
        "text": ModalityTokens(text, text_mask, torch.ones(batch, dtype=torch.bool)),
        "video": ModalityTokens(
            torch.randn(batch, 5, DIM, generator=g),
            torch.ones(batch, 5, dtype=torch.bool),
            torch.tensor([True, False, True])[:batch],
        ),
        "audio": ModalityTokens(
            torch.randn(batch, 7, DIM, generator=g),
            torch.ones(batch, 7, dtype=torch.bool),
            torch.tensor([True, True, False])[:batch],
        ),
    }


def open_injection_gates(fusion: MultimodalAdaptiveFusion) -> None:
    with torch.no_grad():
        for inject in fusion.inject.values():
            inject.gate.fill_(1.0)


def test_masked_attention_matches_float64_reference() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, n, 4, generator=g, dtype=torch.float64) for n in (3, 5, 5))
    mask = torch.tensor([[True, False, True, True, False], [False] * 5])
    out = masked_attention(q, k, v, mask)
    logits = q @ k.transpose(-1, -2) / math.sqrt(4)
    logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    expected = torch.softmax(logits[:1], dim=-1) @ v[:1]
    torch.testing.assert_close(out[:1], expected)
    assert torch.equal(out[1], torch.zeros_like(out[1]))


def test_rope_preserves_norm_and_depends_on_relative_position() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 8, 6, generator=g, dtype=torch.float64)
    rotated = rope_sequence(x)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[..., 0, :], x[..., 0, :])
    q = torch.randn(6, generator=g, dtype=torch.float64)
    k = torch.randn(6, generator=g, dtype=torch.float64)
    # The score of a query at i and a key at j depends only on j - i.
    torch.testing.assert_close(_at(q, 2) @ _at(k, 4), _at(q, 0) @ _at(k, 2))
    assert not torch.allclose(_at(q, 0) @ _at(k, 2), _at(q, 0) @ _at(k, 3))


def _at(vector: torch.Tensor, position: int) -> torch.Tensor:
    """`vector` rotated as if it sat at `position` of a sequence."""
    seq = torch.zeros(position + 1, vector.shape[0], dtype=vector.dtype)
    seq[position] = vector
    return rope_sequence(seq.view(1, 1, position + 1, -1))[0, 0, position]


def test_streams_unchanged_at_init_but_pooled_reflects_inputs() -> None:
    fusion = make_fusion()
    streams = make_streams()
    out, pooled = fusion(streams)
    assert pooled.shape == (3, DIM)
    for name, stream in streams.items():
        assert torch.equal(out[name].tokens, stream.tokens)
        assert torch.equal(out[name].mask, stream.mask)
        assert torch.equal(out[name].present, stream.present)
    changed = dict(streams)
    changed["text"] = ModalityTokens(
        torch.randn(3, 6, DIM) * streams["text"].mask[..., None],
        streams["text"].mask,
        streams["text"].present,
    )
    _, pooled_changed = fusion(changed)
    assert (pooled_changed - pooled).abs().amax(dim=1).min() > 1e-4


def test_gates_zero_for_absent_modalities() -> None:
    fusion = make_fusion()
    streams = make_streams()
    gates = fusion.gates(streams)
    present = torch.stack([streams[m].present for m in fusion.modalities], dim=1)
    assert gates.shape == (3, 3)
    assert torch.equal(gates[~present], torch.zeros(int((~present).sum())))
    assert bool((gates[present] > 0).all() and (gates[present] < 1).all())


def test_absent_modality_content_does_not_leak() -> None:
    fusion = make_fusion()
    open_injection_gates(fusion)
    streams = make_streams()
    out, pooled = fusion(streams)
    noisy = dict(streams)
    video = streams["video"]
    junk = torch.where(video.present[:, None, None], video.tokens, torch.randn_like(video.tokens))
    noisy["video"] = ModalityTokens(junk, video.mask, video.present)
    out_noisy, pooled_noisy = fusion(noisy)
    torch.testing.assert_close(pooled_noisy, pooled)
    torch.testing.assert_close(out_noisy["text"].tokens, out["text"].tokens)
    torch.testing.assert_close(out_noisy["audio"].tokens, out["audio"].tokens)


def test_padding_tokens_do_not_change_outputs() -> None:
    fusion = make_fusion()
    open_injection_gates(fusion)
    streams = make_streams()
    out, pooled = fusion(streams)
    text = streams["text"]
    extra = torch.randn(3, 4, DIM)
    padded = dict(streams)
    padded["text"] = ModalityTokens(
        torch.cat([text.tokens, extra], dim=1),
        torch.cat([text.mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1),
        text.present,
    )
    out_padded, pooled_padded = fusion(padded)
    torch.testing.assert_close(pooled_padded, pooled, atol=1e-6, rtol=1e-5)
    valid = text.mask
    torch.testing.assert_close(
        out_padded["text"].tokens[:, :6][valid], out["text"].tokens[valid], atol=1e-6, rtol=1e-5
    )
    for name in ("video", "audio"):
        torch.testing.assert_close(out_padded[name].tokens, out[name].tokens, atol=1e-6, rtol=1e-5)
    # Masked positions receive no residual.
    assert torch.equal(out["text"].tokens[~valid], text.tokens[~valid])


def test_no_nan_with_all_masked_inputs() -> None:
    fusion = make_fusion()
    open_injection_gates(fusion)
    b = 2
    streams = {
        "text": ModalityTokens(
            torch.zeros(b, 4, DIM, requires_grad=True),
            torch.zeros(b, 4, dtype=torch.bool),
            torch.zeros(b, dtype=torch.bool),
        ),
        "video": ModalityTokens(
            torch.randn(b, 3, DIM),
            torch.zeros(b, 3, dtype=torch.bool),
            torch.ones(b, dtype=torch.bool),
        ),
        "audio": ModalityTokens(
            torch.randn(b, 5, DIM),
            torch.ones(b, 5, dtype=torch.bool),
            torch.zeros(b, dtype=torch.bool),
        ),
    }
    out, pooled = fusion(streams)
    assert torch.isfinite(pooled).all()
    assert all(torch.isfinite(s.tokens).all() for s in out.values())
    (pooled.sum() + sum(s.tokens.sum() for s in out.values())).backward()
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters() if p.grad is not None)
    # Nothing present: the pooled condition is the same learned vector for every sample.
    torch.testing.assert_close(pooled[0], pooled[1])


def test_deterministic_with_seed_and_subset_of_streams() -> None:
    streams = make_streams()
    _, pooled_a = make_fusion(seed=3)(streams)
    _, pooled_b = make_fusion(seed=3)(streams)
    assert torch.equal(pooled_a, pooled_b)
    _, pooled_other = make_fusion(seed=4)(streams)
    assert not torch.equal(pooled_a, pooled_other)
    only_text, pooled_text = make_fusion()({"text": streams["text"]})
    assert set(only_text) == {"text"} and pooled_text.shape == (3, DIM)
    with pytest.raises(ValueError, match="subset"):
        make_fusion()({"smell": streams["text"]})


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_masked_attention_all_masked_rows_on_cuda(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, n, 64, generator=g) for n in (3, 5, 5))
    mask = torch.tensor([[True, False, True, True, False], [False] * 5])
    expected = masked_attention(q.double(), k.double(), v.double(), mask)
    out = masked_attention(*(x.cuda().to(dtype) for x in (q, k, v)), mask.cuda())
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double().cpu(), expected, atol=2e-2, rtol=2e-2)
    assert not out[1].any()
