"""CUDA-graph replay: static-buffer semantics (on CPU, with an eager stand-in for the graph),
graph-capturability of the denoisers (no host syncs, no host tensors, checked on `meta`), and
the real graphs against eager calls where a GPU is present."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from audiox_turbo.conditioning.conditioner import Conditioner, Conditions
from audiox_turbo.config import preset
from audiox_turbo.errors import AudioXError
from audiox_turbo.model.denoiser import Denoiser
from audiox_turbo.model.graphs import (
    CapturedCall,
    GraphedForward,
    map_tensors,
    signature,
    tensors_of,
)
from audiox_turbo.official.config import official_preset
from audiox_turbo.official.mmdit import OfficialMMDiT
from audiox_turbo.official.sampling import official_velocity
from audiox_turbo.pipeline import AudioXTurbo
from conftest import randomize_

TINY = preset("tiny")
HOST_SYNCS = {
    "aten._local_scalar_dense.default",
    "aten.nonzero.default",
    "aten.is_nonzero.default",
    "aten.equal.default",
}


class EagerReplay(GraphedForward):
    """CPU stand-in with graph semantics: replay re-runs the captured call on the static inputs
    and writes into the captured output, so stale buffers show up as wrong outputs."""

    captures = 0

    def capture(self, static: tuple[tuple[Any, ...], dict[str, Any]]) -> CapturedCall:
        self.captures += 1
        output = self.run(static)

        def replay() -> None:
            output.copy_(self.run(static))

        return CapturedCall(tensors_of(static), replay, output)


class HostTraffic(TorchDispatchMode):
    """Records ops that would synchronise with the host or read a host tensor inside a graph."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if str(func) in HOST_SYNCS:
            self.found.append(str(func))
        tensors = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        if any(a.device.type == "cpu" and a.dim() > 0 for a in tensors):
            self.found.append(f"{func} on a host tensor")
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def tiny() -> tuple[Denoiser, Conditions]:
    torch.manual_seed(0)
    denoiser = Denoiser(TINY).eval()
    randomize_(denoiser)
    conditioner = Conditioner(TINY).eval()
    with torch.no_grad():
        cond = conditioner.unconditional(2, TINY.latent_frames(1.0), 1.0)
    return denoiser, cond


def test_map_tensors_round_trips_dataclasses_and_signature_sees_every_difference(tiny):
    _, cond = tiny
    doubled = map_tensors(cond, lambda t: t * 2 if t.is_floating_point() else t)
    assert isinstance(doubled, Conditions)
    assert torch.equal(doubled.text.tokens, 2 * cond.text.tokens)
    assert torch.equal(doubled.video.mask, cond.video.mask)
    leaves = tensors_of(cond)
    assert len(leaves) == 3 * 3 + 3 and leaves[0] is cond.text.tokens  # pooled, prompt, beat
    base = signature(((torch.zeros(1, 3), cond), {"scale": 1.0}))
    assert base == signature(((torch.ones(1, 3), cond), {"scale": 1.0}))
    assert base != signature(((torch.zeros(2, 3), cond), {"scale": 1.0}))
    assert base != signature(((torch.zeros(1, 3, dtype=torch.float64), cond), {"scale": 1.0}))
    assert base != signature(((torch.zeros(1, 3), cond), {"scale": 6.0}))
    assert base != signature(((torch.zeros(1, 3), cond.repeat(2)), {"scale": 1.0}))


def test_replay_refreshes_every_input_and_returns_fresh_outputs(tiny):
    denoiser, cond = tiny
    graphed = EagerReplay(denoiser)
    g = torch.Generator().manual_seed(1)
    frames = cond.prompt.shape[-1]
    outputs = []
    with torch.no_grad():
        for step in range(3):
            x = torch.randn(2, TINY.codec.latent_dim, frames, generator=g)
            t = torch.rand(2, generator=g)
            changed = map_tensors(cond, lambda v, s=step: v + s if v.is_floating_point() else v)
            out = graphed(x, t, changed)
            torch.testing.assert_close(out, denoiser(x, t, changed), rtol=0, atol=0)
            outputs.append(out)
    assert graphed.captures == 1
    assert not torch.equal(outputs[0], outputs[1]), "a later replay overwrote an earlier output"


def test_new_signatures_capture_again_and_the_cache_is_bounded(tiny):
    denoiser, cond = tiny
    graphed = EagerReplay(denoiser, max_graphs=2)
    with torch.no_grad():
        for b in (2, 4, 2, 6, 4, 6):
            conditions = cond if b == 2 else cond.repeat(b // 2)
            x = torch.randn(b, TINY.codec.latent_dim, cond.prompt.shape[-1])
            out = graphed(x, torch.rand(b), conditions)
            assert out.shape == x.shape
    assert graphed.captures == 4  # 2, 4, 6 (evicts 4, used least recently), 4 (evicts 2)
    assert len(graphed.graphs) == 2


def test_replay_is_for_inference_and_modes_get_their_own_graphs(tiny):
    denoiser, cond = tiny
    graphed = EagerReplay(denoiser)
    x = torch.randn(2, TINY.codec.latent_dim, cond.prompt.shape[-1])
    with pytest.raises(RuntimeError, match="is for inference"):
        graphed(x, torch.rand(2), cond)
    with torch.no_grad():
        graphed(x, torch.rand(2), cond)
    with torch.inference_mode():
        out = graphed(x, torch.rand(2), cond)
    assert graphed.captures == 2 and out.is_inference()


def test_moving_or_casting_the_official_model_drops_its_graphs():
    from audiox_turbo.official.model import OfficialAudioXTurbo

    model = OfficialAudioXTurbo(official_preset("official_tiny"))
    model.graphed = stale = EagerReplay(model.denoiser)
    model.to(torch.float64)
    assert model.graphed is not stale and not model.graphed.graphs
    model.graphed = stale
    model.cast(torch.bfloat16)
    assert model.graphed is not stale


def test_graphs_need_cuda():
    pipe = AudioXTurbo.from_preset("tiny")
    with pytest.raises(AudioXError, match="CUDA graphs need a CUDA device"):
        pipe.enable_cuda_graphs()
    pipe.enable_cuda_graphs(False)
    assert pipe.graphed is None


def test_native_denoiser_forward_is_capturable(tiny):
    """No host syncs and no host tensors in a forward with every input on `meta`."""
    _, cond = tiny
    with torch.device("meta"):
        denoiser = Denoiser(TINY)
    meta = cond.to("meta")
    x = torch.randn(2, TINY.codec.latent_dim, meta.prompt.shape[-1], device="meta")
    with torch.no_grad(), HostTraffic() as traffic:
        denoiser(x, torch.rand(2, device="meta"), meta)
    assert traffic.found == []


@pytest.mark.parametrize("cfg_scale, scale_phi", [(1.0, 0.0), (6.0, 0.0), (6.0, 0.7)])
def test_official_guided_velocity_is_capturable(cfg_scale, scale_phi):
    config = official_preset("official_tiny")
    with torch.device("meta"):
        mmdit = OfficialMMDiT(config)
    width = mmdit.to_cond_embed[0].weight.shape[1]
    x = torch.randn(1, config.codec.latent_dim, config.latent_frames, device="meta")
    cond = torch.randn(1, config.cond_sequence, width, device="meta")
    with torch.no_grad(), HostTraffic() as traffic:
        official_velocity(mmdit, cond, cfg_scale, scale_phi)(x, torch.rand(1, device="meta"))
    assert traffic.found == []


def test_the_probe_catches_host_syncs_and_host_tensors():
    with HostTraffic() as traffic:
        torch.arange(4).to("meta")
        torch.ones(3).sum().item()
    assert any("host tensor" in f for f in traffic.found)
    assert "aten._local_scalar_dense.default" in traffic.found


@pytest.mark.gpu
def test_cuda_graph_generation_equals_eager():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pipe = AudioXTurbo.from_preset("tiny", device="cuda")
    randomize_(pipe.denoiser)
    eager = pipe(text="rain", duration=2.0, seed=3, method="student", steps=4).waveforms
    pipe.enable_cuda_graphs()
    for _ in range(2):  # the first call captures, the second replays
        graphed = pipe(text="rain", duration=2.0, seed=3, method="student", steps=4).waveforms
        torch.testing.assert_close(graphed, eager, rtol=0, atol=1e-5)
    guided = pipe(text="rain", duration=2.0, seed=3, method="euler", steps=3, cfg=3.0).waveforms
    pipe.enable_cuda_graphs(False)
    reference = pipe(text="rain", duration=2.0, seed=3, method="euler", steps=3, cfg=3.0).waveforms
    torch.testing.assert_close(guided, reference, rtol=0, atol=1e-5)
    pipe.enable_cuda_graphs()
    pipe.to("cpu")  # graphs cannot follow the model off the GPU
    assert pipe.graphed is None
    cpu = pipe(text="rain", duration=2.0, seed=3, method="student", steps=4).waveforms
    assert cpu.shape == eager.shape and torch.isfinite(cpu).all()
