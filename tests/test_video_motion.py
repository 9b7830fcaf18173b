"""The `motion` video encoder: parameter-free luminance, colour and frame-difference features
that a latent cache can hold, so a teacher trained from cached latents learns video tasks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from audiox_turbo.conditioning.conditioner import Conditioner, ConditionInputs
from audiox_turbo.conditioning.motion import (
    COLOUR_GRID,
    LUMA_GRID,
    MOTION_FEATURE_DIM,
    motion_features,
)
from audiox_turbo.config import ModelConfig, preset
from audiox_turbo.data.latents import LatentShardDataset
from audiox_turbo.data.manifest import write_manifest
from audiox_turbo.model_dir import native_components, save_model_dir
from test_dataset import LEVEL_STEP, make_clip

LUMA_END = LUMA_GRID**2
COLOUR_END = LUMA_END + 3 * COLOUR_GRID**2


def motion_config() -> ModelConfig:
    tiny = preset("tiny")
    conditioning = dataclasses.replace(
        tiny.conditioning, video_encoder="motion", video_feature_dim=MOTION_FEATURE_DIM
    )
    return dataclasses.replace(tiny, conditioning=conditioning)


def flashing_square(frames: int, on: int, off: int, size: int = 32) -> torch.Tensor:
    """(1, frames, 3, size, size) uint8: mid grey, a white square in the top-left quarter from
    frame `on` until frame `off`."""
    video = torch.full((1, frames, 3, size, size), 128, dtype=torch.uint8)
    video[0, on:off, :, : size // 4, : size // 4] = 255
    return video


def test_shapes_ranges_and_float_input() -> None:
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 6, 3, 24, 24), generator=g, dtype=torch.uint8)
    features = motion_features(video)
    assert features.shape == (2, 6, MOTION_FEATURE_DIM) == (2, 6, 176)
    assert features[..., :COLOUR_END].abs().max() <= 1.0
    motion = features[..., COLOUR_END:]
    assert (motion >= 0).all() and (motion[:, 0] == 0).all() and (motion[:, 1:] > 0).all()
    torch.testing.assert_close(motion_features(video.float() / 255.0), features)
    assert motion_features(video[:, :1]).shape == (2, 1, MOTION_FEATURE_DIM)
    with pytest.raises(ValueError, match="frames must be"):
        motion_features(video[0])


def test_a_flash_is_motion_at_its_frames_and_in_its_corner() -> None:
    features = motion_features(flashing_square(10, on=4, off=7))[0]
    motion = features[:, COLOUR_END:]
    energy = motion.sum(dim=1)
    assert energy.nonzero().flatten().tolist() == [4, 7]
    grid = motion[4].view(LUMA_GRID, LUMA_GRID)
    corner = LUMA_GRID // 4
    assert (grid[:corner, :corner] > 0.5).all()
    assert grid[corner:].abs().sum() == 0 and grid[:, corner:].abs().sum() == 0
    # luminance: the lit corner is brighter while the square is on
    luma = features[:, :LUMA_END].view(10, LUMA_GRID, LUMA_GRID)
    assert luma[5, 0, 0] > 0.9 and abs(luma[2, 0, 0]) < 0.02


def test_colour_features_tell_red_from_blue() -> None:
    red = torch.zeros(1, 2, 3, 16, 16, dtype=torch.uint8)
    red[:, :, 0] = 255
    blue = red.roll(2, dims=2)
    colour = lambda v: motion_features(v)[0, 0, LUMA_END:COLOUR_END].view(3, -1)  # noqa: E731
    assert (colour(red)[0] == 1).all() and (colour(red)[2] == -1).all()
    assert (colour(blue)[2] == 1).all() and (colour(blue)[0] == -1).all()


def test_motion_encoder_is_frozen_cacheable_and_matches_the_frame_path() -> None:
    config = motion_config()
    torch.manual_seed(0)
    conditioner = Conditioner(config).eval()
    video = conditioner.video
    assert video.frozen_encoder and video.cnn is None and video.clip is None
    assert video.proj.in_features == MOTION_FEATURE_DIM
    frames = config.video_frames(1.0)
    clip = flashing_square(frames, 1, 3, size=config.conditioning.video_size).repeat(2, 1, 1, 1, 1)
    cached = video.cache_encoder()(clip)
    torch.testing.assert_close(cached, motion_features(clip))
    t = config.latent_frames(1.0)
    with torch.no_grad():
        from_frames = conditioner(ConditionInputs(2, video=clip), t, 1.0)
        from_cache = conditioner(ConditionInputs(2, video_features=cached), t, 1.0)
    torch.testing.assert_close(from_cache.video.tokens, from_frames.video.tokens)
    assert from_cache.video.present.all()


def test_motion_needs_its_feature_dim() -> None:
    tiny = preset("tiny")
    bad = dataclasses.replace(tiny.conditioning, video_encoder="motion", video_feature_dim=32)
    with pytest.raises(ValueError, match="176 features per frame; video_feature_dim is 32"):
        Conditioner(dataclasses.replace(tiny, conditioning=bad))


def test_demo_preset_caches_25_fps_motion() -> None:
    conditioning = preset("demo").conditioning
    assert conditioning.video_encoder == "motion" and conditioning.video_fps == 25.0
    assert conditioning.video_feature_dim == MOTION_FEATURE_DIM


def test_data_encode_caches_motion_features(tmp_path: Path) -> None:
    """`data encode --video` with a motion-encoder model: every video clip's shard holds its
    motion features, whose motion rows see the brightness change of the clip's frames."""
    from audiox_turbo.cli.data import app

    config = motion_config()
    model = tmp_path / "model"
    save_model_dir(model, config, native_components(config))
    records = [make_clip(tmp_path, "v0", 1.0), make_clip(tmp_path, "a0", 1.0, video=False)]
    manifest = tmp_path / "clips.jsonl"
    write_manifest(manifest, records)
    result = CliRunner().invoke(
        app,
        ["encode", str(manifest), "--model", str(model), "--out", str(tmp_path / "l"), "--video"],
    )
    assert result.exit_code == 0, result.output
    samples = {s["id"]: s for s in LatentShardDataset(tmp_path / "l", crop_frames=None)}
    with_video = samples["v0"]["video_features"]
    assert with_video.shape == (config.video_frames(1.0), MOTION_FEATURE_DIM)
    # the level mp4 brightens by LEVEL_STEP every source frame (10 fps, sampled at 4 fps: 2 or
    # 3 steps apart): uniform motion over the grid, of the size of those steps
    motion = with_video[1:, COLOUR_END:]
    assert motion.std(dim=1).max() < 1e-3
    low, high = np.sqrt(2 * LEVEL_STEP / 255), np.sqrt(3 * LEVEL_STEP / 255)
    assert 0.9 * low < motion.min() and motion.max() < 1.1 * high
    assert samples["a0"]["video_features"].shape[0] in (0, config.video_frames(1.0))
