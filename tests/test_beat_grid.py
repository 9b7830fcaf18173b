"""The beat grid: tempo parsing, grid phase from note onsets, the conditioner's grid, the
denoiser's zero-initialised read of it, its training signal and its data path."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from audiox_turbo.conditioning.beat import (
    FIRST_BEAT_S,
    beat_grid,
    clip_first_beat,
    first_beat,
    parse_tempo,
)
from audiox_turbo.conditioning.conditioner import Conditioner
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.config import preset
from audiox_turbo.data.dataset import ClipDataset, collate
from audiox_turbo.data.latents import LatentShardDataset, encode_to_shards
from audiox_turbo.data.manifest import write_manifest
from audiox_turbo.model.denoiser import Denoiser, carry_weights
from audiox_turbo.train.run_config import TeacherTrainingConfig, TrainConfig
from audiox_turbo.train.teacher import TeacherTask
from conftest import randomize_
from test_dataset import SR, make_clip
from test_shards import DOWNSAMPLING, pool_encoder

TINY = preset("tiny")
BEAT = dataclasses.replace(
    TINY, conditioning=dataclasses.replace(TINY.conditioning, beat_grid=True)
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("text", "tempo"),
    [
        ("A slow melody played on acoustic grand piano at 91 BPM in D minor.", 91.0),
        ("Instrumental music, electronic kit and polysynth pad, A major, tempo 66, arpeggio.", 66),
        ("Voice lead and acoustic bass playing a sad arpeggio, 91 beats per minute.", 91),
        ("141 BPM, Ab minor: acoustic kit and slap bass 1.", 141),
        ("a techno loop at 128bpm", 128),
        ("tempo: 100.5", 100.5),
        ("Beeps at 1200 Hz, three times.", None),
        ("a 120 second recording of rain", None),
        ("tempo 12, far too slow", None),
        ("999 BPM", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_tempo_reads_the_world_wordings_and_nothing_else(text, tempo):
    assert parse_tempo(text) == tempo


def test_first_beat_recovers_the_grid_phase_despite_off_beat_notes():
    tempo, start = 91.0, 0.137
    beat = 60.0 / tempo
    onsets = [start + k * beat for k in range(7)] + [start + 2.5 * beat, start + 4.5 * beat]
    assert first_beat(onsets, tempo) == pytest.approx(start, abs=0.03)
    assert first_beat([start + k * beat for k in range(7)], tempo) == pytest.approx(start, abs=1e-9)


def test_clip_first_beat_follows_the_crop():
    labels = {"tempo": 120, "event_times": [0.13 + 0.5 * k for k in range(8)]}
    for crop in (0.0, 0.2, 0.61, 1.9):
        first = clip_first_beat(labels, crop)
        assert 0.0 <= first < 0.5
        beats = (crop + first - 0.13) / 0.5
        assert beats == pytest.approx(round(beats), abs=1e-9)
    assert clip_first_beat({"tempo": None, "event_times": [0.3]}, 0.4) == FIRST_BEAT_S
    assert clip_first_beat({"category": "speech"}, 0.4) == FIRST_BEAT_S


def test_beat_grid_matches_its_float64_definition_and_is_zero_without_a_tempo():
    rate, frames = 31.25, 160
    tempo = torch.tensor([120.0, 0.0, 77.0])
    first = torch.tensor([0.1, 0.3, 0.02])
    grid = beat_grid(tempo, first, frames, rate)
    assert grid.shape == (3, frames, 4) and grid.dtype == torch.float32
    centre = (np.arange(frames) + 0.5) / rate
    for i in (0, 2):
        phase = 2 * np.pi * (centre - float(first[i])) * float(tempo[i]) / 60
        reference = np.stack([np.cos(phase), np.sin(phase), np.cos(2 * phase), np.sin(2 * phase)])
        np.testing.assert_allclose(grid[i].numpy(), reference.T, atol=1e-6)
    assert (grid[1] == 0).all()
    beats = [0.1 + 0.5 * k for k in range(10)]  # the frames nearest the beats peak
    peaks = [int(np.argmin(np.abs(centre - b))) for b in beats]
    assert (grid[0, peaks, 0] > 0.95).all() and (grid[0, [p + 8 for p in peaks], 0] < -0.9).all()


def test_conditioner_grids_only_kept_texts_that_state_a_tempo():
    torch.manual_seed(0)
    conditioner = Conditioner(BEAT).eval()
    frames = TINY.latent_frames(2.0)
    texts = ["drum kit at 120 BPM", "a dog barking", None, "piano, tempo 90"]
    first = torch.tensor([0.1, 0.1, 0.1, 0.25])
    with torch.no_grad():
        cond = conditioner(ConditionInputs(4, text=texts, first_beat=first), frames, 2.0)
        uncond = conditioner.unconditional(4, frames, 2.0)
        default = conditioner(ConditionInputs(1, text=texts[:1]), frames, 2.0)
    rate = TINY.codec.latent_rate
    expected = beat_grid(torch.tensor([120.0, 0, 0, 90.0]), first, frames, rate)
    torch.testing.assert_close(cond.beat, expected)
    assert cond.beat[0].abs().sum() > 0 and (cond.beat[1:3] == 0).all()
    assert (uncond.beat == 0).all()
    torch.testing.assert_close(default.beat[0], cond.beat[0])  # FIRST_BEAT_S by default
    dropped_config = dataclasses.replace(
        BEAT, denoiser=dataclasses.replace(BEAT.denoiser, text_dropout=1.0)
    )
    dropped = Conditioner(dropped_config)
    with torch.no_grad():
        cond = dropped(ConditionInputs(4, text=texts, first_beat=first), frames, 2.0, drop=True)
    assert (cond.beat == 0).all()  # a dropped text takes its tempo with it
    with torch.no_grad():
        plain = Conditioner(TINY)(ConditionInputs(4, text=texts, first_beat=first), frames, 2.0)
    assert (plain.beat == 0).all()  # a model without the grid gets none
    flat = {k: v for k, v in cond.tensors().items() if k != "beat"}  # an older checkpoint
    assert (type(cond).from_tensors(flat).beat == torch.zeros(4, frames, 4)).all()
    both = type(cond).cat([cond, uncond]).repeat(2)
    assert both.beat.shape == (16, frames, 4)


def test_denoiser_reads_the_grid_only_when_configured_and_starts_at_zero():
    frames = 32
    conditioner = Conditioner(BEAT).eval()
    plain = randomize_(Denoiser(TINY), seed=1, std=0.05).eval()
    grown = carry_weights(plain, BEAT).eval()
    assert plain.beat_in is None and grown.beat_in is not None
    inputs = ConditionInputs(2, text=["kit at 120 BPM", "kit at 80 BPM"])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, TINY.codec.latent_dim, frames, generator=g)
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        cond = conditioner(inputs, frames, frames / TINY.codec.latent_rate)
        silent = dataclasses.replace(cond, beat=torch.zeros_like(cond.beat))
        assert torch.equal(plain(x, t, cond), plain(x, t, silent))  # no grid read
        assert torch.equal(grown(x, t, cond), plain(x, t, cond))  # zero-initialised
        torch.nn.init.normal_(grown.beat_in.weight, std=0.1)
        assert not torch.allclose(grown(x, t, cond), grown(x, t, silent))
    deeper = dataclasses.replace(BEAT, denoiser=dataclasses.replace(BEAT.denoiser, depth=3))
    with pytest.raises(ValueError, match="does not fit"):
        carry_weights(plain, deeper)


def test_teacher_step_trains_the_grid_from_tempo_prompts_only():
    """The flow loss reaches the grid's weights through the per-frame modulation, for a
    tempo prompt; a batch without one gives its weights no gradient."""
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=2, max_steps=1, lr=1e-3, timestep_sampler="uniform")
    task = TeacherTask(BEAT, cfg, TeacherTrainingConfig(validation_prompts=()))
    randomize_(task.flow.denoiser, seed=2, std=0.05)
    frames = 16
    g = torch.Generator().manual_seed(3)
    latents = torch.randn(2, TINY.codec.latent_dim, frames, generator=g)

    def batch(texts: list[str]) -> dict:
        return collate(
            [
                {
                    "latents": latents[i],
                    "latent_mask": torch.ones(frames, dtype=torch.bool),
                    "prompt_mask": torch.zeros(frames, dtype=torch.bool),
                    "text": texts[i],
                    "text_present": True,
                    "audio_prompt_present": False,
                    "first_beat": 0.05 * (i + 1),
                }
                for i in range(2)
            ]
        )

    from audiox_turbo.train.trainer import Trainer

    def weight_grad(texts: list[str], tmp: Path) -> torch.Tensor:
        trainer = Trainer(task, cfg, tmp, [], collate, progress=False, cpu=True)
        task.flow.denoiser.zero_grad()
        task.training_step(batch(texts), "flow", trainer.context())["loss"].backward()
        return task.flow.denoiser.beat_in.weight.grad.clone()

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tempo = weight_grad(["drum kit at 120 BPM", "piano, tempo 90"], Path(tmp) / "a")
        none = weight_grad(["a dog barking", "rain on a roof"], Path(tmp) / "b")
    assert tempo.abs().sum() > 0
    assert (none == 0).all()


def test_datasets_give_each_crop_its_first_beat(tmp_path):
    """Clips at 120 BPM whose first note is 0.13 s in: every crop's first beat, counted from
    the crop's start, lands on that grid, for raw clips and cached latents."""
    records = [
        make_clip(
            tmp_path,
            f"m{i}",
            2.0,
            video=False,
            labels={"tempo": 120, "event_times": [0.13 + 0.5 * k for k in range(4)]},
        )
        for i in range(3)
    ]
    records.append(make_clip(tmp_path, "fx", 2.0, video=False, labels={"category": "sfx"}))
    write_manifest(tmp_path / "m.jsonl", records)
    raw = ClipDataset(tmp_path / "m.jsonl", SR, 1, 0.7, seed=4)
    encode_to_shards(
        tmp_path / "m.jsonl", tmp_path / "lat", pool_encoder, sample_rate=SR, channels=1,
        downsampling=DOWNSAMPLING,
    )  # fmt: skip
    cached = LatentShardDataset(tmp_path / "lat", crop_frames=20, seed=4)
    samples = [raw[i] for i in range(len(raw))] + list(cached)
    assert len(samples) == 8
    for s in samples:
        if s["id"] == "fx":
            assert s["first_beat"] == FIRST_BEAT_S
            continue
        beats = (s["crop_start"] + s["first_beat"] - 0.13) / 0.5
        assert 0 <= s["first_beat"] < 0.5 and beats == pytest.approx(round(beats), abs=1e-6)
    assert collate(samples[:2])["conditions"].first_beat.shape == (2,)
    assert math.isfinite(float(collate(samples[-2:])["first_beat"].sum()))
