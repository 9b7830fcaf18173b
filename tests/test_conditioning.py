"""Text, video and audio-prompt conditioners, keep masks, dropout and the Conditioner."""

from __future__ import annotations

import copy
import dataclasses
import pathlib

import pytest
import torch

from audiox_turbo.conditioning import (
    AudioPromptConditioner,
    Conditioner,
    Conditions,
    TextConditioner,
    VideoConditioner,
    audio_keep_mask,
    condition_dropout,
)
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.config import ModelConfig, preset
from audiox_turbo.errors import AudioXError, ModelLoadError

DURATION = 1.5
BASE_CONDITIONER_PARAMETERS = 83_500_803


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return preset("tiny")


@pytest.fixture(scope="module")
def conditioner(config: ModelConfig) -> Conditioner:
    torch.manual_seed(0)
    return Conditioner(config).eval()


def pretend_frozen_cnn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the tiny trainable 'cnn' frame encoder stand in for a frozen one (clip), whose cached
    features the Conditioner accepts."""
    monkeypatch.setattr(VideoConditioner, "frozen_encoder", property(lambda self: True))


def sizes(config: ModelConfig) -> tuple[int, int]:
    return config.latent_frames(DURATION), config.video_frames(DURATION)


def random_video(config: ModelConfig, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = config.conditioning.video_size
    frames = config.video_frames(DURATION)
    return torch.randint(1, 256, (batch, frames, 3, size, size), generator=g, dtype=torch.uint8)


def test_shapes_dtypes_and_prompt(config: ModelConfig, conditioner: Conditioner) -> None:
    t, nv = sizes(config)
    c = config.conditioning
    latents = torch.randn(2, config.codec.latent_dim, t)
    keep = audio_keep_mask("inpaint", t, (0.5, 1.0), DURATION, 2)
    text, video = ["a dog barks", "rain"], random_video(config, 2)
    inputs = ConditionInputs(2, text=text, video=video, audio_latents=latents, audio_keep=keep)
    out = conditioner(inputs, t, DURATION)
    assert out.text.tokens.shape == (2, c.text_max_tokens, c.dim)
    assert out.video.tokens.shape == (2, nv, c.dim)
    assert out.audio.tokens.shape == (2, t, c.dim)
    assert out.pooled.shape == (2, c.dim)
    assert out.prompt.shape == (2, config.codec.latent_dim + 1, t)
    for m in (out.text, out.video, out.audio):
        assert m.tokens.dtype == torch.float32 and m.mask.dtype == torch.bool
        assert m.present.tolist() == [True, True]
    torch.testing.assert_close(out.prompt, torch.cat([latents * keep, keep], dim=1))
    assert out.text.mask[0].sum() == len(b"a dog barks")
    assert torch.equal(out.text.tokens[0, len(b"a dog barks") :], torch.zeros(21, c.dim))


def test_text_padding_does_not_change_tokens(config: ModelConfig) -> None:
    torch.manual_seed(0)
    text = TextConditioner(config.conditioning)
    alone = text(["hum"], 1)
    batched = text(["hum", "a much longer prompt with many more bytes"], 2)
    torch.testing.assert_close(batched.tokens[:1], alone.tokens, atol=1e-6, rtol=1e-5)
    assert torch.equal(batched.mask[:1], alone.mask)
    truncated = text(["x" * 100], 1)
    assert truncated.mask.all()


def test_nulls_for_absent_modalities(config: ModelConfig, conditioner: Conditioner) -> None:
    t, nv = sizes(config)
    video = random_video(config, 3)
    video[1] = 0
    latents = torch.randn(3, config.codec.latent_dim, t)
    text = conditioner.text(["a bell", "", None], 3)
    assert text.present.tolist() == [True, False, False]
    for i in (1, 2):
        assert torch.equal(text.tokens[i], conditioner.text.null[0]) and text.mask[i].all()
    vid = conditioner.video(video, 3, nv, torch.tensor([True, True, False]))
    assert vid.present.tolist() == [True, False, False]
    for i in (1, 2):
        assert torch.equal(vid.tokens[i], conditioner.video.null.expand(nv, -1))
    aud, prompt = conditioner.audio(latents, None, 3, t, torch.tensor([False, True, True]))
    assert aud.present.tolist() == [False, True, True]
    assert torch.equal(aud.tokens[0], conditioner.audio.null.expand(t, -1))
    assert torch.equal(prompt[0], torch.zeros_like(prompt[0]))
    aud_none, prompt_none = conditioner.audio(None, None, 3, t)
    assert not aud_none.present.any() and not prompt_none.any()


def test_unconditional_is_all_nulls(config: ModelConfig, conditioner: Conditioner) -> None:
    t, _ = sizes(config)
    uncond = conditioner.unconditional(2, t, DURATION)
    explicit = conditioner(ConditionInputs(2, text=[None, ""]), t, DURATION)
    for m in (uncond.text, uncond.video, uncond.audio):
        assert not m.present.any()
    torch.testing.assert_close(uncond.pooled, explicit.pooled)
    torch.testing.assert_close(uncond.pooled[0], uncond.pooled[1])
    assert not uncond.prompt.any()
    cond = conditioner(ConditionInputs(2, text=["thunder", "thunder"]), t, DURATION)
    assert not torch.allclose(cond.pooled, uncond.pooled)


def test_samples_are_independent_in_a_batch(config: ModelConfig, conditioner: Conditioner) -> None:
    t, _ = sizes(config)
    video = random_video(config, 2)
    latents = torch.randn(2, config.codec.latent_dim, t)
    keep = audio_keep_mask("continue", t, (0.0, 0.7), DURATION, 2)
    media = {"video": video, "audio_latents": latents, "audio_keep": keep}
    both = conditioner(ConditionInputs(2, text=["wind", "a long prompt"], **media), t, DURATION)
    first = {name: value[:1] for name, value in media.items()}
    one = conditioner(ConditionInputs(1, text=["wind"], **first), t, DURATION)
    torch.testing.assert_close(both.pooled[:1], one.pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.video.tokens[:1], one.video.tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.audio.tokens[:1], one.audio.tokens, atol=1e-5, rtol=1e-5)


def test_dropout_rates_and_determinism() -> None:
    probabilities = (0.1, 0.3, 0.6)
    keep = condition_dropout(20_000, probabilities, torch.Generator().manual_seed(0))
    rates = 1.0 - keep.float().mean(dim=1)
    for rate, p in zip(rates.tolist(), probabilities, strict=True):
        assert abs(rate - p) < 4 * (p * (1 - p) / 20_000) ** 0.5 + 1e-3
    again = condition_dropout(20_000, probabilities, torch.Generator().manual_seed(0))
    assert torch.equal(keep, again)


def test_forward_drop_follows_the_generator(config: ModelConfig) -> None:
    denoiser = dataclasses.replace(
        config.denoiser, text_dropout=0.5, video_dropout=0.25, audio_dropout=0.75
    )
    cfg = dataclasses.replace(config, denoiser=denoiser)
    torch.manual_seed(0)
    conditioner = Conditioner(cfg)
    t, _ = sizes(cfg)
    b = 16
    inputs = ConditionInputs(
        b,
        text=["a siren"] * b,
        video=random_video(cfg, b),
        audio_latents=torch.randn(b, cfg.codec.latent_dim, t),
    )
    out = conditioner(inputs, t, DURATION, drop=True, generator=torch.Generator().manual_seed(7))
    keep = condition_dropout(b, (0.5, 0.25, 0.75), torch.Generator().manual_seed(7))
    assert torch.equal(torch.stack([out.text.present, out.video.present, out.audio.present]), keep)
    again = conditioner(inputs, t, DURATION, drop=True, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out.pooled, again.pooled)
    no_drop = conditioner(inputs, t, DURATION)
    assert no_drop.text.present.all() and no_drop.audio.present.all()


def test_deterministic_with_seed(config: ModelConfig) -> None:
    t, _ = sizes(config)
    outputs = []
    for _ in range(2):
        torch.manual_seed(5)
        inputs = ConditionInputs(1, text=["birds"], video=random_video(config, 1))
        outputs.append(Conditioner(config)(inputs, t, DURATION))
    assert torch.equal(outputs[0].pooled, outputs[1].pooled)
    assert torch.equal(outputs[0].video.tokens, outputs[1].video.tokens)


def test_conditions_cat_repeat_to(config: ModelConfig, conditioner: Conditioner) -> None:
    t, _ = sizes(config)
    cond = conditioner(ConditionInputs(2, text=["a", "b"]), t, DURATION)
    uncond = conditioner.unconditional(2, t, DURATION)
    both = Conditions.cat([cond, uncond])
    assert both.batch_size == 4
    assert torch.equal(both.text.tokens[2:], uncond.text.tokens)
    assert both.text.present.tolist() == [True, True, False, False]
    rep = cond.repeat(3)
    assert rep.batch_size == 6
    assert torch.equal(rep.pooled[:3], cond.pooled[:1].expand(3, -1))
    assert torch.equal(rep.text.mask[3:], cond.text.mask[1:].expand(3, -1))
    assert torch.equal(rep.prompt[4], cond.prompt[1])
    half = cond.to("cpu", torch.float16)
    assert half.pooled.dtype == torch.float16 and half.text.mask.dtype == torch.bool


def test_conditions_round_trip_through_flat_tensors(
    config: ModelConfig, conditioner: Conditioner
) -> None:
    t, _ = sizes(config)
    cond = conditioner(ConditionInputs(2, text=["a", None]), t, DURATION)
    back = Conditions.from_tensors(cond.tensors())
    for name in ("text", "video", "audio"):
        a, b = getattr(cond, name), getattr(back, name)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.mask, b.mask), name
        assert torch.equal(a.present, b.present), name
    assert torch.equal(back.pooled, cond.pooled) and torch.equal(back.prompt, cond.prompt)


def test_audio_keep_mask_modes() -> None:
    frames, duration = 40, 4.0  # 10 frames per second
    inpaint = audio_keep_mask("inpaint", frames, (1.05, 2.0), duration, 2)
    assert inpaint.shape == (2, 1, 40) and inpaint.dtype == torch.float32
    expected = torch.ones(40)
    expected[10:20] = 0.0  # floor(10.5) .. ceil(20): the whole span is regenerated
    assert torch.equal(inpaint[1, 0], expected)
    cont = audio_keep_mask("continue", frames, (0.0, 1.55), duration, 1)
    assert cont[0, 0].tolist() == [1.0] * 15 + [0.0] * 25
    whole = audio_keep_mask("continue", frames, (0.0, 4.0), duration, 1)
    assert whole.all()
    assert not audio_keep_mask("reference", frames, None, duration, 3).any()


@pytest.mark.parametrize(
    ("mode", "span", "message"),
    [
        ("remix", (0.0, 1.0), "unknown audio mode"),
        ("inpaint", None, "needs a span"),
        ("continue", (2.0, 1.0), "must satisfy"),
        ("inpaint", (0.0, 9.0), "must satisfy"),
    ],
)
def test_audio_keep_mask_errors(mode: str, span: tuple[float, float] | None, message: str) -> None:
    with pytest.raises(AudioXError, match=message) as info:
        audio_keep_mask(mode, 40, span, 4.0, 1)
    assert "\n" not in str(info.value)


def test_audio_tokens_hide_regenerated_frames(
    config: ModelConfig, conditioner: Conditioner
) -> None:
    t, _ = sizes(config)
    latents = torch.randn(1, config.codec.latent_dim, t)
    other = latents.clone()
    keep = audio_keep_mask("inpaint", t, (0.5, 1.0), DURATION, 1)
    other[..., keep[0, 0] == 0] = torch.randn_like(other[..., keep[0, 0] == 0])
    a, pa = conditioner.audio(latents, keep, 1, t)
    b, pb = conditioner.audio(other, keep, 1, t)
    torch.testing.assert_close(a.tokens, b.tokens)
    torch.testing.assert_close(pa, pb)
    # Reference mode: no prompt channels, but the tokens carry the clip.
    zero, reference = torch.zeros(1, 1, t), torch.tensor([True])
    ra, rpa = conditioner.audio(latents, zero, 1, t, reference=reference)
    rb, _ = conditioner.audio(other, zero, 1, t, reference=reference)
    assert not rpa.any()
    assert not torch.allclose(ra.tokens, rb.tokens)


def test_bad_shapes_raise(config: ModelConfig, conditioner: Conditioner) -> None:
    t, nv = sizes(config)
    with pytest.raises(ValueError, match="frames"):
        conditioner.video(random_video(config, 1)[:, :-1], 1, nv)
    with pytest.raises(ValueError, match="latents"):
        conditioner.audio(torch.randn(1, config.codec.latent_dim, t + 1), None, 1, t)
    with pytest.raises(ValueError, match="prompts"):
        conditioner.text(["a", "b"], 3)


def test_gradients_reach_trainable_parts(config: ModelConfig) -> None:
    torch.manual_seed(0)
    conditioner = Conditioner(config)
    t, _ = sizes(config)
    inputs = ConditionInputs(
        2,
        text=["a", None],
        video=random_video(config, 2),
        audio_latents=torch.randn(2, config.codec.latent_dim, t),
    )
    out = conditioner(inputs, t, DURATION)
    loss = out.pooled.square().sum() + out.text.tokens.sum() + out.video.tokens.sum()
    loss.backward()
    for module in (conditioner.text.bytes_encoder, conditioner.video.cnn, conditioner.audio.proj):
        assert module is not None
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert conditioner.text.null.grad is not None


def test_missing_pretrained_encoders_give_one_line_errors(
    config: ModelConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.delenv("AUDIOX_TURBO_T5_PATH", raising=False)
    c = dataclasses.replace(config.conditioning, text_encoder="t5-base", text_feature_dim=768)
    with pytest.raises(ModelLoadError, match="AUDIOX_TURBO_T5_PATH") as info:
        TextConditioner(c)(["x"], 1)
    assert "\n" not in str(info.value)
    c = dataclasses.replace(c, text_encoder=str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="nowhere"):
        TextConditioner(c)(["x"], 1)
    monkeypatch.delenv("AUDIOX_TURBO_CLIP_PATH", raising=False)
    v = dataclasses.replace(config.conditioning, video_encoder="clip")
    with pytest.raises(ModelLoadError, match="AUDIOX_TURBO_CLIP_PATH"):
        VideoConditioner(v)(random_video(config, 1), 1, config.video_frames(DURATION))


def test_base_builds_on_meta_without_files(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_files(*args: object, **kwargs: object) -> None:
        raise AssertionError("building the conditioner tried to load pretrained files")

    for target in (
        "audiox_turbo.conditioning.frozen.FrozenEncoder.get",
        "audiox_turbo.conditioning.text.resolve_local_dir",
        "audiox_turbo.conditioning.video.resolve_local_dir",
        "audiox_turbo.conditioning.text.PretrainedTextEncoder.directory",
        "audiox_turbo.conditioning.text.PretrainedTextEncoder.tokenizer",
    ):
        monkeypatch.setattr(target, no_files)
    monkeypatch.delenv("AUDIOX_TURBO_T5_PATH", raising=False)
    monkeypatch.delenv("AUDIOX_TURBO_CLIP_PATH", raising=False)
    with torch.device("meta"):
        conditioner = Conditioner(preset("base"))
    assert conditioner.text.pretrained is not None and not conditioner.text.pretrained.model.loaded
    assert conditioner.video.clip is not None and not conditioner.video.clip.model.loaded
    assert all(p.is_meta for p in conditioner.parameters())
    count = sum(p.numel() for p in conditioner.parameters())
    assert count == BASE_CONDITIONER_PARAMETERS
    assert set(conditioner.state_dict()) == {n for n, _ in conditioner.named_parameters()}


def test_minilm_is_frozen_and_out_of_state_dict(config: ModelConfig) -> None:
    c = dataclasses.replace(config.conditioning, text_encoder="minilm", text_feature_dim=384)
    torch.manual_seed(0)
    text = TextConditioner(c)
    out = text(["a dog barks in the rain", None, "hi"], 3)
    assert out.tokens.shape == (3, c.text_max_tokens, c.dim)
    assert out.present.tolist() == [True, False, True]
    # [CLS] hi [SEP] -> 3 tokens; padding is masked and zeroed.
    assert out.mask[2].sum() == 3 and not out.tokens[2, 3:].any()
    alone = text(["hi"], 1)
    torch.testing.assert_close(alone.tokens[0], out.tokens[2], atol=1e-5, rtol=1e-4)
    assert set(text.state_dict()) == {"null", "proj.weight", "proj.bias"}
    assert sum(p.numel() for p in text.parameters()) == c.text_max_tokens * c.dim + 385 * c.dim
    assert text.pretrained is not None
    encoder = text.pretrained.model.get(torch.device("cpu"), torch.float32)
    assert not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert copy.deepcopy(text).pretrained is text.pretrained
    # cached frozen features (padded longer, as collate pads them) give the same tokens
    prompts = ["a dog barks in the rain", None, "hi"]
    states, mask = text.frozen_features(["a dog barks in the rain", "", "hi"])
    states = torch.nn.functional.pad(states, (0, 0, 0, 5))
    mask = torch.nn.functional.pad(mask, (0, 5))
    cached = text(prompts, 3, features=(states, mask))
    torch.testing.assert_close(cached.tokens, out.tokens, atol=1e-5, rtol=1e-4)
    assert torch.equal(cached.mask, out.mask)


def test_trainable_text_encoder_refuses_feature_caching(config: ModelConfig) -> None:
    text = TextConditioner(config.conditioning)
    assert not text.frozen_encoder
    with pytest.raises(AudioXError, match="frozen pretrained text encoder"):
        text.frozen_features(["a bell"])


@pytest.mark.gpu
def test_conditioner_on_cuda_matches_cpu(config: ModelConfig) -> None:
    torch.manual_seed(0)
    conditioner = Conditioner(config).eval()
    t, _ = sizes(config)
    latents = torch.randn(2, config.codec.latent_dim, t)
    keep = audio_keep_mask("inpaint", t, (0.25, 0.75), DURATION, 2)
    inputs = ConditionInputs(
        2, text=["a bell", None], video=random_video(config, 2), audio_latents=latents
    )
    cpu = conditioner(dataclasses.replace(inputs, audio_keep=keep), t, DURATION)
    cuda_inputs = inputs.to("cuda")
    kept = dataclasses.replace(cuda_inputs, audio_keep=keep.cuda())
    gpu = conditioner.cuda()(kept, t, DURATION)
    torch.testing.assert_close(gpu.pooled.cpu(), cpu.pooled, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(gpu.video.tokens.cpu(), cpu.video.tokens, atol=2e-2, rtol=2e-2)
    half = conditioner.to(torch.bfloat16)(kept, t, DURATION)
    assert half.pooled.dtype == torch.bfloat16 and torch.isfinite(half.pooled).all()
    dropped = conditioner(
        cuda_inputs, t, DURATION, drop=True, generator=torch.Generator("cuda").manual_seed(0)
    )
    assert dropped.text.present.device.type == "cuda"
    assert torch.isfinite(conditioner.unconditional(2, t, DURATION).pooled.float()).all()


def test_cached_video_features_match_the_frame_path(
    config: ModelConfig, conditioner: Conditioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    pretend_frozen_cnn(monkeypatch)
    t, nv = sizes(config)
    video = random_video(config, 2)
    video[1] = 0
    with torch.no_grad():
        features = conditioner.video.frame_features(video)
        features[1] = 0.0  # what a latent shard caches for a clip without video
        from_frames = conditioner(ConditionInputs(2, video=video), t, DURATION)
        from_features = conditioner(ConditionInputs(2, video_features=features), t, DURATION)
    assert features.shape == (2, nv, config.conditioning.video_feature_dim)
    assert from_features.video.present.tolist() == [True, False]
    torch.testing.assert_close(from_features.video.tokens, from_frames.video.tokens)
    torch.testing.assert_close(from_features.pooled, from_frames.pooled)
    absent_flags = torch.tensor([False, True])
    absent = conditioner(ConditionInputs(2, video_present=absent_flags), t, DURATION)
    with torch.no_grad():
        dropped = conditioner(
            ConditionInputs(2, video_present=absent_flags, video_features=features), t, DURATION
        )
    assert dropped.video.present.tolist() == [False, False]
    torch.testing.assert_close(dropped.video.tokens, absent.video.tokens)


def test_cached_video_feature_errors(
    config: ModelConfig, conditioner: Conditioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    t, nv = sizes(config)
    dim = config.conditioning.video_feature_dim
    with pytest.raises(ValueError, match="not both"):
        ConditionInputs(2, video=random_video(config, 2), video_features=torch.ones(2, nv, dim))
    with pytest.raises(AudioXError, match="frozen frame encoder"):
        conditioner.video.cache_encoder()
    pretend_frozen_cnn(monkeypatch)
    with pytest.raises(ValueError, match="video_feature_dim"):
        conditioner(ConditionInputs(2, video_features=torch.ones(2, nv + 1, dim)), t, DURATION)


def test_full_span_inpaint_reveals_nothing_but_reference_does(config: ModelConfig) -> None:
    torch.manual_seed(0)
    audio = AudioPromptConditioner(config.codec.latent_dim, config.conditioning.dim, 2, 1)
    frames = 12
    latents = torch.randn(2, config.codec.latent_dim, frames)
    nothing_kept = torch.zeros(2, 1, frames)
    inpaint, _ = audio(latents, nothing_kept, 2, frames, reference=torch.tensor([False, False]))
    blank, _ = audio(torch.zeros_like(latents), nothing_kept, 2, frames, reference=None)
    torch.testing.assert_close(inpaint.tokens, blank.tokens)
    reference, _ = audio(latents, nothing_kept, 2, frames, reference=torch.tensor([True, False]))
    assert (reference.tokens[0] - inpaint.tokens[0]).abs().max() > 1e-4
    torch.testing.assert_close(reference.tokens[1], inpaint.tokens[1])


def test_padded_video_frames_are_masked_and_null(config: ModelConfig, conditioner: Conditioner):
    _, nv = sizes(config)
    video = random_video(config, 2)
    mask = torch.ones(2, nv, dtype=torch.bool)
    mask[0, nv // 2 :] = False
    mask[1] = False  # no real frame at all: absent
    other = video.clone()
    other[0, nv // 2 :] = random_video(config, 1, seed=5)[0, nv // 2 :]
    a = conditioner.video(video, 2, nv, frame_mask=mask)
    b = conditioner.video(other, 2, nv, frame_mask=mask)
    torch.testing.assert_close(a.tokens, b.tokens)
    assert torch.equal(a.mask[0], mask[0]) and a.present.tolist() == [True, False]
    null = conditioner.video.null.expand(nv - nv // 2, -1)
    torch.testing.assert_close(a.tokens[0, nv // 2 :], null)
    unmasked = conditioner.video(other, 2, nv)
    assert (unmasked.tokens[0, : nv // 2] - a.tokens[0, : nv // 2]).abs().max() > 1e-5


def test_trainable_encoders_refuse_cached_features(
    config: ModelConfig, conditioner: Conditioner
) -> None:
    t, nv = sizes(config)
    c = config.conditioning
    states = torch.ones(2, c.text_max_tokens, c.text_feature_dim)
    with pytest.raises(AudioXError, match="text encoder 'bytes' is trainable"):
        conditioner(ConditionInputs(2, text_features=states), t, DURATION)
    features = torch.ones(2, nv, c.video_feature_dim)
    with pytest.raises(AudioXError, match="video encoder 'cnn' is trainable"):
        conditioner(ConditionInputs(2, video_features=features), t, DURATION)


def test_condition_inputs_to_and_with_audio_prompt(config: ModelConfig) -> None:
    t, nv = sizes(config)
    c = config.conditioning
    latents = torch.randn(2, config.codec.latent_dim, t)
    keep = audio_keep_mask("inpaint", t, (0.5, 1.0), DURATION, 2)
    present, reference = torch.tensor([True, False]), torch.tensor([False, True])
    raw = ConditionInputs(
        2, text=["a bell", None], video=random_video(config, 2), video_present=present
    ).with_audio_prompt(latents, keep, present, reference)
    assert raw.audio_latents is latents and raw.audio_keep is keep
    assert raw.audio_present is present and raw.audio_reference is reference
    assert raw.with_audio_prompt(latents, keep, present).audio_reference is None
    cached = ConditionInputs(
        2,
        text_features=torch.randn(2, 5, c.text_feature_dim),
        text_mask=torch.ones(2, 5, dtype=torch.bool),
        video_features=torch.randn(2, nv, c.video_feature_dim),
        video_mask=torch.ones(2, nv, dtype=torch.bool),
    )
    for inputs in (raw, cached):
        moved = inputs.to("meta")
        assert moved.batch_size == 2 and moved.text == inputs.text
        for field in dataclasses.fields(inputs):
            before, after = getattr(inputs, field.name), getattr(moved, field.name)
            if isinstance(before, torch.Tensor):
                assert after.is_meta and after.dtype == before.dtype and after.shape == before.shape
            else:
                assert after is before
    with pytest.raises(ValueError, match="prompts"):
        ConditionInputs(3, text=["a", "b"])
