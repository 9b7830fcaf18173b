"""`Pipeline.generate_batch`: requests with per-request seeds in one batch give what each
gives alone; incompatible requests are refused; grouped noise draws what each group draws alone."""

from __future__ import annotations

import pytest
import torch

from audiox_turbo.errors import AudioXError
from audiox_turbo.interface import GenerationRequest
from audiox_turbo.model.generation import grouped_noise, grouped_renoise, seeded_noise
from audiox_turbo.pipeline import AudioXTurbo

TOLERANCE = 1e-5  # batched matmuls round differently from single ones (seen: ≤ 3e-7)


@pytest.fixture(scope="module")
def pipe():
    return AudioXTurbo.from_preset("tiny")


def test_grouped_noise_matches_each_seed_alone():
    cpu = torch.device("cpu")
    noise = grouped_noise((6, 3, 5), [4, 9, 4], cpu)
    for g, seed in enumerate([4, 9, 4]):
        assert torch.equal(noise[2 * g : 2 * g + 2], seeded_noise((2, 3, 5), seed, cpu))
    assert torch.equal(grouped_noise((6, 3, 5), [4], cpu), seeded_noise((6, 3, 5), 4, cpu))
    draw = grouped_renoise([1, 2], cpu)
    first = draw(torch.zeros(4, 3))
    alone = torch.randn((2, 3), generator=torch.Generator().manual_seed(3))
    assert torch.equal(first[2:], alone)
    with pytest.raises(ValueError, match="equal seed groups"):
        grouped_noise((5, 3, 5), [1, 2], cpu)


@pytest.mark.parametrize(
    ("method", "steps", "cfg", "num_outputs"),
    [("student", 4, None, 1), ("euler", 6, 3.0, 2)],
)
def test_batch_equals_each_request_alone(pipe, method, steps, cfg, num_outputs):
    options = dict(duration=0.7, method=method, steps=steps, cfg=cfg, num_outputs=num_outputs)
    requests = [
        GenerationRequest(text="a dog barking", seed=1, **options),
        GenerationRequest(text="rain on a tin roof, distant thunder", seed=7, **options),
        GenerationRequest(text="a dog barking", seed=2, **options),
    ]
    assert len({pipe.batch_key(r) for r in requests}) == 1
    batch = pipe.generate_batch(requests)
    for request, out in zip(requests, batch, strict=True):
        alone = pipe(**request.kwargs())
        assert out.waveforms.shape == alone.waveforms.shape == (num_outputs, 1, 11200)
        assert (out.waveforms - alone.waveforms).abs().max() < TOLERANCE
        assert (out.seed, out.nfe, out.duration) == (request.seed, alone.nfe, alone.duration)
    # same prompt, different seeds: different audio (the seeds really are per request)
    assert (batch[0].waveforms - batch[2].waveforms).abs().max() > 1e-3


def test_batch_with_audio_prompts_equals_alone(pipe):
    clip = torch.sin(torch.linspace(0, 400, 16000)).unsqueeze(0) * 0.5
    options = dict(duration=1.0, steps=4, method="student", audio_mode="inpaint", span=(0.2, 0.6))
    requests = [
        GenerationRequest(audio=clip, seed=5, **options),
        GenerationRequest(audio=clip.flip(-1), seed=6, **options),
    ]
    for request, out in zip(requests, pipe.generate_batch(requests), strict=True):
        alone = pipe(**request.kwargs())
        assert (out.waveforms - alone.waveforms).abs().max() < TOLERANCE


def test_incompatible_requests_are_refused(pipe):
    a = GenerationRequest(text="a", duration=1.0, steps=4, method="student")
    for other in (
        GenerationRequest(text="b", duration=2.0, steps=4, method="student"),
        GenerationRequest(text="b", duration=1.0, steps=2, method="student"),
        GenerationRequest(text="b", duration=1.0, steps=4, method="student", num_outputs=2),
        GenerationRequest(duration=1.0, steps=4, method="student", audio=torch.zeros(1, 9000)),
    ):
        assert pipe.batch_key(a) != pipe.batch_key(other)
        with pytest.raises(AudioXError, match="must share"):
            pipe.generate_batch([a, other])
    with pytest.raises(AudioXError, match="duration"):
        pipe.batch_key(GenerationRequest(text="a", duration=-1.0))
    assert pipe.generate_batch([]) == []


def test_unseeded_requests_get_distinct_reported_seeds(pipe):
    requests = [GenerationRequest(text="a", duration=0.5, steps=2, method="student")] * 2
    first, second = pipe.generate_batch(requests)
    assert first.seed != second.seed
    again = pipe(
        **GenerationRequest(
            text="a", duration=0.5, steps=2, method="student", seed=first.seed
        ).kwargs()
    )
    assert (again.waveforms - first.waveforms).abs().max() < TOLERANCE
