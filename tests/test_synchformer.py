"""Synchformer's video feature extractor: parity with the official code on every fixture tensor
of `../shared/official/synchformer`, the released sizes, and converting its checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import Tensor

from audiox_turbo.errors import ModelLoadError
from audiox_turbo.official.config import SynchformerConfig
from audiox_turbo.official.synchformer import CHECKPOINT_PREFIX, SynchformerVideoEncoder

FIXTURES = Path(
    os.environ.get(
        "AUDIOX_SYNCHFORMER_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "official" / "synchformer",
    )
)
needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "MANIFEST.json").is_file(),
    reason=f"Synchformer parity fixtures not found at {FIXTURES} (only in the project workspace)",
)
# The fixtures' tiny model (their README, section 9).
FIXTURE_CONFIG = SynchformerConfig(
    embed_dim=48, depth=2, num_heads=4, image_size=48, agg_heads=4, agg_feedforward=192
)
SMALL = SynchformerConfig(
    embed_dim=32, depth=2, num_heads=2, image_size=32, agg_heads=4, agg_feedforward=64
)
RELEASED_PARAMETERS = 122_440_704
UNUSED_PARAMETERS = 590_592


def load(name: str) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(FIXTURES / f"synchformer_tiny_{name}.safetensors")


def assert_close(actual: Tensor, expected: Tensor, name: str) -> None:
    assert actual.shape == expected.shape, name
    tol = 1e-4 * max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol, f"{name}: max error {err:.3g} > {tol:.3g}"


def fixture_encoder(tmp_path: Path) -> SynchformerVideoEncoder:
    """The fixture weights, written as an official .pth (with a foreign key) and converted."""
    from audiox_turbo.official.convert import read_synchformer_checkpoint

    ckpt = tmp_path / "synchformer_state_dict.pth"
    torch.save(load("state_dict") | {"afeat_extractor.dummy_weight": torch.ones(3)}, ckpt)
    state, dropped = read_synchformer_checkpoint(ckpt, FIXTURE_CONFIG)
    assert dropped == 1
    encoder = SynchformerVideoEncoder(FIXTURE_CONFIG).eval()
    encoder.load_state_dict(state, strict=True)
    return encoder


@needs_fixtures
@torch.no_grad()
def test_every_fixture_tensor(tmp_path: Path) -> None:
    encoder = fixture_encoder(tmp_path)
    io, expected = load("io"), load("intermediates")
    video = io["video"]
    assert_close(encoder.extract(video), io["video_sync_frames"], "video_sync_frames")
    assert_close(encoder.extract(video, segment_batch=4), io["video_sync_frames"], "chunked")
    segments = video.unfold(1, 16, 8).permute(0, 1, 2, 5, 3, 4).flatten(0, 1)
    captured: dict[str, Tensor] = {}

    def keep(name: str):
        return lambda module, inputs, output: captured.__setitem__(name, output)

    encoder.patch_embed_3d.register_forward_hook(keep("patch_embed_out"))
    encoder.norm.register_forward_hook(keep("norm_out"))
    encoder.spatial_attn_agg.register_forward_hook(keep("spatial_agg_out"))
    for i, block in enumerate(encoder.blocks):
        block.timeattn.register_forward_hook(keep(f"blocks.{i}.time_attn_out"))
        block.attn.register_forward_hook(keep(f"blocks.{i}.space_attn_out"))
        block.register_forward_hook(keep(f"blocks.{i}.out"))
    captured["segment_features"] = encoder(segments).unsqueeze(1)
    captured["tokens_in"] = encoder.tokens(segments)
    assert set(captured) == set(expected)
    for name, tensor in expected.items():
        assert_close(captured[name], tensor, name)


@needs_fixtures
def test_released_sizes_match_the_released_state_dict() -> None:
    from audiox_turbo.official.synchformer import unused_shapes

    table = json.loads((FIXTURES / "synchformer_full_state_dict_shapes.json").read_text())
    with torch.device("meta"):
        encoder = SynchformerVideoEncoder(SynchformerConfig())
    ours = {CHECKPOINT_PREFIX + k: list(v.shape) for k, v in encoder.state_dict().items()}
    ours |= {CHECKPOINT_PREFIX + k: list(v) for k, v in unused_shapes(SynchformerConfig()).items()}
    assert ours == table["shapes"]


def test_released_sizes_without_fixtures() -> None:
    config = SynchformerConfig()
    with torch.device("meta"):
        encoder = SynchformerVideoEncoder(config)
    assert sum(p.numel() for p in encoder.parameters()) == RELEASED_PARAMETERS - UNUSED_PARAMETERS
    assert (config.frames, config.segments(config.frames), config.tokens) == (250, 30, 240)


@torch.no_grad()
def test_other_sizes_and_batching() -> None:
    encoder = SynchformerVideoEncoder(SMALL).eval()
    video = torch.rand(2, 41, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = encoder.extract(video, segment_batch=3)
    assert out.shape == (2, 8 * SMALL.segments(41), 32) == (2, 32, 32)
    torch.testing.assert_close(out, encoder.extract(video, segment_batch=100))
    second = encoder.extract(video[1:])
    torch.testing.assert_close(second[0], out[1])
    # segment s covers frames 8s..8s+15: changing frame 40 (unused) changes nothing
    changed = video.clone()
    changed[:, 40] = 0
    assert torch.equal(encoder.extract(changed, segment_batch=3), out)


def fake_released_checkpoint(config: SynchformerConfig) -> dict[str, Tensor]:
    """Every key of the released table with blocks < depth, at `config`'s reduced size, plus
    an audio-tower key the converter must drop; values random."""
    table = json.loads((FIXTURES / "synchformer_full_state_dict_shapes.json").read_text())
    d, n = config.embed_dim, config.patches_per_frame
    sizes = {768: d, 2304: 3 * d, 3072: config.mlp_ratio * d, 197: 1 + n}
    g = torch.Generator().manual_seed(5)
    state = {}
    for key, shape in table["shapes"].items():
        if key.startswith(f"{CHECKPOINT_PREFIX}blocks.") and int(key.split(".")[2]) >= config.depth:
            continue
        state[key] = torch.randn([sizes.get(s, s) for s in shape], generator=g)
    return state | {"afeat_extractor.blocks.0.norm1.weight": torch.ones(5)}


@needs_fixtures
def test_convert_a_released_layout_checkpoint_at_reduced_size(tmp_path: Path) -> None:
    from audiox_turbo.official.convert import read_synchformer_checkpoint

    config = SynchformerConfig(
        embed_dim=32, depth=2, num_heads=2, image_size=32, agg_heads=2, agg_feedforward=128
    )
    fake = fake_released_checkpoint(config)
    torch.save(fake, tmp_path / "sync.pth")
    state, dropped = read_synchformer_checkpoint(tmp_path / "sync.pth", config)
    assert dropped == 1 and len(state) == len(fake) - 3  # the 2-D patch embedding is unused
    encoder = SynchformerVideoEncoder(config)
    encoder.load_state_dict(state, strict=True)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, fake[CHECKPOINT_PREFIX + key])


def write_checkpoint(path: Path, config: SynchformerConfig, **changes: Tensor | None) -> Path:
    """A .pth of a random extractor in the official layout; `changes` set (None: delete) keys."""
    from audiox_turbo.official.synchformer import unused_shapes

    state = {
        CHECKPOINT_PREFIX + k: v for k, v in SynchformerVideoEncoder(config).state_dict().items()
    }
    state |= {CHECKPOINT_PREFIX + k: torch.zeros(s) for k, s in unused_shapes(config).items()}
    for key, value in changes.items():
        if value is None:
            del state[CHECKPOINT_PREFIX + key]
        else:
            state[CHECKPOINT_PREFIX + key] = value
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"norm.bias": None}, r"1 missing: vfeat_extractor\.norm\.bias"),
        ({"extra.weight": torch.zeros(1)}, r"1 unexpected: vfeat_extractor\.extra\.weight"),
        (
            {"temp_embed": torch.zeros(1, 4, 32)},
            r"wrong shape: .*temp_embed \(1, 4, 32\) != \(1, 8",
        ),
    ],
)
def test_bad_checkpoints_are_one_line_errors(tmp_path: Path, change, message) -> None:
    from audiox_turbo.official.convert import read_synchformer_checkpoint

    path = write_checkpoint(tmp_path / "bad.pth", SMALL, **change)
    with pytest.raises(ModelLoadError, match=message) as e:
        read_synchformer_checkpoint(path, SMALL)
    assert "\n" not in str(e.value) and "bad.pth" in str(e.value)


def test_foreign_files_are_one_line_errors(tmp_path: Path) -> None:
    from audiox_turbo.official.convert import read_synchformer_checkpoint

    cases = {
        "list.pth": (lambda p: torch.save([torch.zeros(1)], p), "not a state dict"),
        "other.pth": (lambda p: torch.save({"a.weight": torch.zeros(1)}, p), "no vfeat_extractor"),
        "code.pth": (lambda p: torch.save({"x": SMALL}, p), "cannot read checkpoint"),
        "junk.pth": (lambda p: p.write_bytes(b"junk" * 9), "cannot read checkpoint"),
    }
    for name, (write, message) in cases.items():
        write(tmp_path / name)
        with pytest.raises(ModelLoadError, match=message) as e:
            read_synchformer_checkpoint(tmp_path / name, SMALL)
        assert "\n" not in str(e.value) and name in str(e.value)


def test_frames_are_padded_resized_and_normalised_as_the_demo() -> None:
    from audiox_turbo.official.synchformer import normalize_sync_frames

    frames = torch.zeros(3, 3, 20, 40, dtype=torch.uint8)
    frames[1], frames[2] = 255, 51
    video = normalize_sync_frames(frames, SMALL)
    assert video.shape == (SMALL.frames, 3, 32, 32) and video.dtype == torch.float32
    assert torch.all(video[0] == -1) and torch.all(video[1] == 1)
    assert torch.allclose(video[2:], torch.tensor(51 / 255 * 2 - 1))  # the last frame repeated
    long = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(normalize_sync_frames(long, SMALL), long[:250].float() / 127.5 - 1)
