"""Video-to-audio with the official model from a raw video: the model's Synchformer extractor
computes the sync features (`generate --video`), `--sync-features` overrides them, and a model
directory without the extractor says how to add it."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor

from audiox_turbo.errors import AudioXError
from audiox_turbo.official.config import SynchformerConfig, official_preset
from audiox_turbo.official.synchformer import SynchformerVideoEncoder
from test_cli import make_video, run_cli
from test_official_model import randomize_, write_official_files, write_tiny_t5

TINY_SYNC = SynchformerConfig(
    embed_dim=32, depth=1, num_heads=2, mlp_ratio=2, image_size=32, agg_heads=2, agg_feedforward=64
)


@pytest.fixture(scope="module")
def sync_model(tmp_path_factory):
    """The tiny official model with a tiny extractor (random weights)."""
    from audiox_turbo.official.model import OfficialAudioXTurbo
    from audiox_turbo.official.text import OfficialTextConditioner

    config = replace(official_preset("official_tiny"), synchformer=TINY_SYNC)
    t5_dir = write_tiny_t5(tmp_path_factory.mktemp("t5"), config.cond_dim)
    model = OfficialAudioXTurbo(config, OfficialTextConditioner.from_dir(t5_dir, 128))
    randomize_(model, seed=1)
    randomize_(model.synchformer, seed=2, std=0.3)
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, sync_model) -> Path:
    path = tmp_path_factory.mktemp("official") / "m"
    sync_model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    make_video(path, seconds=10.6, fps=25, size=40)
    return path


class ExtractorSpy:
    """Records the clips the extractor sees and the features it returns."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple[Tensor, Tensor]] = []
        real = SynchformerVideoEncoder.extract

        def spy(module, video, segment_batch=32):
            out = real(module, video, segment_batch)
            self.calls.append((video.clone(), out.clone()))
            return out

        monkeypatch.setattr(SynchformerVideoEncoder, "extract", spy)


def generate(monkeypatch, capsys, model_dir: Path, out: Path, *args: str) -> np.ndarray:
    code, _, err = run_cli(
        monkeypatch, capsys, "generate", "--model", str(model_dir), "-t", "bell", "-o", str(out),
        *args,
    )  # fmt: skip
    assert code == 0, err
    return sf.read(out)[0]


def test_generate_video_computes_the_features_and_the_override_matches(
    monkeypatch, capsys, tmp_path, model_dir, clip
) -> None:
    spy = ExtractorSpy(monkeypatch)
    computed = generate(monkeypatch, capsys, model_dir, tmp_path / "a.wav", "--video", str(clip))
    assert len(spy.calls) == 1
    video, features = spy.calls[0]
    assert video.shape == (1, 250, 3, 32, 32) and features.shape == (1, 240, 32)
    assert video.min() >= -1 and video.max() <= 1 and features.abs().amax() > 0
    np.save(tmp_path / "sync.npy", features[0].numpy())
    explicit = generate(
        monkeypatch, capsys, model_dir, tmp_path / "b.wav",
        "--video", str(clip), "--sync-features", str(tmp_path / "sync.npy"),
    )  # fmt: skip
    assert len(spy.calls) == 1  # the override skips the extractor
    assert np.array_equal(computed, explicit)
    np.save(tmp_path / "zeros.npy", np.zeros((240, 32), np.float32))
    zeros = generate(
        monkeypatch, capsys, model_dir, tmp_path / "c.wav",
        "--video", str(clip), "--sync-features", str(tmp_path / "zeros.npy"),
    )  # fmt: skip
    assert not np.allclose(computed, zeros)


def test_video_start_moves_the_extractor_window(
    monkeypatch, capsys, tmp_path, model_dir, clip, sync_model
) -> None:
    from audiox_turbo.io.video import load_video_frames
    from audiox_turbo.official.synchformer import normalize_sync_frames

    spy = ExtractorSpy(monkeypatch)
    generate(monkeypatch, capsys, model_dir, tmp_path / "a.wav", "--video", str(clip))
    generate(
        monkeypatch, capsys, model_dir, tmp_path / "b.wav", "--video", str(clip),
        "--video-start", "0.4",
    )  # fmt: skip
    (at_0, features_0), (at_04, features_04) = spy.calls
    frames = load_video_frames(clip, 25.0, 32, start=0.4, duration=10.0)
    assert torch.equal(at_04[0], normalize_sync_frames(frames, TINY_SYNC))
    assert torch.equal(at_04[0, :240], at_0[0, 10:250])  # 0.4 s = 10 frames at 25 fps
    assert not torch.equal(features_0, features_04)


def test_pipeline_batches_on_the_model_dtype(sync_model, clip) -> None:
    from audiox_turbo.io.video import load_video_frames
    from audiox_turbo.official.pipeline import OfficialPipeline

    pipe = OfficialPipeline(sync_model)
    frames = load_video_frames(clip, 25.0, 32, duration=10.0)
    features = sync_model.sync_features(frames)
    batch = sync_model.sync_features(torch.stack([frames, frames.flip(0)]))
    assert batch.shape == (2, 240, 32)
    torch.testing.assert_close(batch[:1], features)
    out = pipe(text="bell", video=str(clip), seed=4)
    clip_frames = pipe._video(str(clip), 0.0)
    expected, _ = sync_model.generate(
        "bell", video_frames=clip_frames, sync_features=features, seed=4
    )
    assert torch.equal(out.waveforms, expected)
    half = copy.deepcopy(sync_model).cast(torch.bfloat16)
    assert half.sync_features(frames).dtype == torch.bfloat16


def released_layout_checkpoint(tmp_path: Path, model) -> Path:
    """The model's extractor as a released-style .pth (nested, prefixed, with the unused 2-D
    patch embedding and an audio-tower key)."""
    state = {f"vfeat_extractor.{k}": v for k, v in model.synchformer.state_dict().items()}
    state |= {
        "vfeat_extractor.patch_embed.proj.weight": torch.zeros(32, 3, 16, 16),
        "vfeat_extractor.patch_embed.proj.bias": torch.zeros(32),
        "afeat_extractor.dummy_weight": torch.zeros(2),
    }
    path = tmp_path / "synchformer_state_dict.pth"
    torch.save({"state_dict": state}, path)
    return path


def test_without_the_extractor_the_message_says_how_to_add_it(
    monkeypatch, capsys, tmp_path, sync_model, model_dir, clip
) -> None:
    from audiox_turbo.official.model import OfficialAudioXTurbo

    plain = OfficialAudioXTurbo(replace(sync_model.config, synchformer=None))
    plain.load_state_dict(
        {k: v for k, v in sync_model.state_dict().items() if not k.startswith("synchformer.")}
    )
    plain.text_encoder = sync_model.text_encoder
    plain.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / "synchformer.safetensors").exists()
    capsys.readouterr()
    args = ("generate", "--model", str(tmp_path / "m"), "-t", "bell", "--video", str(clip))
    code, _, err = run_cli(monkeypatch, capsys, *args, "-o", str(tmp_path / "a.wav"))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1
    assert "convert synchformer" in errors[0] and "--sync-features" in errors[0]
    np.save(tmp_path / "sync.npy", np.ones((240, 32), np.float32))
    with_file = generate(
        monkeypatch, capsys, tmp_path / "m", tmp_path / "b.wav",
        "--video", str(clip), "--sync-features", str(tmp_path / "sync.npy"),
    )  # fmt: skip
    assert np.isfinite(with_file).all()
    with pytest.raises(AudioXError, match="no Synchformer"):
        plain.sync_features(torch.zeros(250, 3, 32, 32, dtype=torch.uint8))
    # add it afterwards: the directory then generates as the one saved with the extractor
    from audiox_turbo.official import convert

    real = convert.add_synchformer
    monkeypatch.setattr(convert, "add_synchformer", lambda *a: real(*a, sizes=TINY_SYNC))
    code, out, err = run_cli(
        monkeypatch, capsys, "convert", "synchformer", "--synchformer",
        str(released_layout_checkpoint(tmp_path, sync_model)), "--model", str(tmp_path / "m"),
    )  # fmt: skip
    assert code == 0, err
    assert "1 other synchformer tensors ignored" in out
    added = generate(monkeypatch, capsys, tmp_path / "m", tmp_path / "c.wav", "--video", str(clip))
    saved = generate(monkeypatch, capsys, model_dir, tmp_path / "d.wav", "--video", str(clip))
    assert np.array_equal(added, saved)


def test_convert_official_with_synchformer(tmp_path: Path, sync_model) -> None:
    from audiox_turbo.official.convert import convert_official
    from audiox_turbo.official.model import OfficialAudioXTurbo

    plain = OfficialAudioXTurbo(replace(sync_model.config, synchformer=None))
    plain.load_state_dict(
        {k: v for k, v in sync_model.state_dict().items() if not k.startswith("synchformer.")}
    )
    paths = write_official_files(tmp_path, plain, {})
    ckpt = released_layout_checkpoint(tmp_path, sync_model)
    report = convert_official(
        paths["ckpt"], paths["vae"], tmp_path / "out", clip=paths["clip"],
        config=sync_model.config, synchformer=ckpt,
    )  # fmt: skip
    assert report.matched["synchformer"] == len(sync_model.synchformer.state_dict())
    loaded = OfficialAudioXTurbo.from_pretrained(tmp_path / "out")
    assert loaded.config.synchformer == TINY_SYNC
    for key, value in sync_model.synchformer.state_dict().items():
        assert torch.equal(loaded.synchformer.state_dict()[key], value)
