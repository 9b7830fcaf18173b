"""CUDA-graph replay of a network call: one launch instead of thousands per forward.

At batch 1 a few-step sampler is bound by the CPU issuing the MMDiT's many small kernels, not
by the GPU. `GraphedForward` captures one call per input signature (shapes, dtypes, devices
and the non-tensor arguments) into a CUDA graph and replays it. Inputs are copied into the
graph's static buffers before each replay, so callers pass ordinary tensors; the output is
returned as a fresh tensor. The wrapped call must not synchronise with the host (no `.item()`,
no host-to-device copies) and must not depend on values through Python control flow.

A graph bakes in what held at capture: the module's weights where they were (moving or
re-assigning them needs a new `GraphedForward`), backend flags such as TF32, and dataclass
inputs as rebuilt from their init fields. Calls are inference only (autograd off) and not
thread-safe (one set of static buffers per signature).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

from audiox_turbo.errors import AudioXError


def map_tensors(obj: Any, fn: Callable[[Tensor], Any]) -> Any:
    """A copy of obj (nested tuples, lists, dicts, dataclasses) with every tensor t -> fn(t)."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {
            f.name: map_tensors(getattr(obj, f.name), fn) for f in dataclasses.fields(obj) if f.init
        }
        return dataclasses.replace(obj, **changes)
    return obj


def tensors_of(obj: Any) -> list[Tensor]:
    """Every tensor inside obj, in `map_tensors` order."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in tensors_of(v)]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensors_of(v)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [
            t for f in dataclasses.fields(obj) if f.init for t in tensors_of(getattr(obj, f.name))
        ]
    return []


def signature(obj: Any) -> Hashable:
    """What a captured graph depends on: structure, tensor shapes/dtypes/devices, other values."""
    if isinstance(obj, Tensor):
        return ("tensor", tuple(obj.shape), obj.dtype, str(obj.device))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(signature(v) for v in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, signature(v)) for k, v in obj.items()))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = tuple((f.name, signature(getattr(obj, f.name))) for f in dataclasses.fields(obj))
        return (type(obj).__qualname__, fields)
    return ("value", obj)


def require_cuda(device: torch.device) -> None:
    """CUDA graphs run on CUDA devices only: a one-line AudioXError elsewhere."""
    if device.type != "cuda":
        raise AudioXError(f"CUDA graphs need a CUDA device; this model is on {device}")


def mode_signature(device: torch.device) -> Hashable:
    """Execution modes a capture depends on: inference mode and autocast on `device`."""
    autocast = torch.is_autocast_enabled(device.type)
    dtype = torch.get_autocast_dtype(device.type) if autocast else None
    return (torch.is_inference_mode_enabled(), autocast, dtype)


@dataclasses.dataclass
class CapturedCall:
    """One captured signature: static input buffers, the replay, the static output."""

    inputs: list[Tensor]
    replay: Callable[[], None]
    output: Tensor


class GraphedForward:
    """Calls fn(*args, **kwargs) -> Tensor through CUDA graphs, one per input signature.

    `max_graphs` bounds the cache (each graph keeps its activations' memory); the least
    recently used graph is dropped when a new signature arrives. Graphs share one memory pool.
    """

    def __init__(self, fn: Callable[..., Tensor], warmup: int = 2, max_graphs: int = 4) -> None:
        self.fn = fn
        self.warmup = warmup
        self.max_graphs = max_graphs
        self.graphs: dict[Hashable, CapturedCall] = {}
        self.pool: tuple[int, int] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        if torch.is_grad_enabled():
            raise RuntimeError("CUDA-graph replay is for inference: call it under torch.no_grad()")
        call = (args, kwargs)
        inputs = tensors_of(call)
        if not inputs:
            raise ValueError("a graphed call needs at least one tensor argument")
        device = inputs[0].device
        key = (signature(call), mode_signature(device))
        captured = self.graphs.pop(key, None)
        on_device = torch.cuda.device(device) if device.type == "cuda" else nullcontext()
        with on_device:
            if captured is None:
                if len(self.graphs) >= self.max_graphs:
                    self.graphs.pop(next(iter(self.graphs)))
                captured = self.capture(map_tensors(call, lambda t: t.detach().clone()))
            self.graphs[key] = captured  # most recently used last
            for buffer, value in zip(captured.inputs, inputs, strict=True):
                buffer.copy_(value)
            captured.replay()
            return captured.output.clone()

    def run(self, static: tuple[tuple[Any, ...], dict[str, Any]]) -> Tensor:
        """One eager call on the static arguments."""
        args, kwargs = static
        return self.fn(*args, **kwargs)

    def capture(self, static: tuple[tuple[Any, ...], dict[str, Any]]) -> CapturedCall:
        """Warm up on a side stream (lazy initialisation, autotuning), then capture one call."""
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.run(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = self.run(static)
        if not isinstance(output, Tensor):
            raise TypeError(f"a graphed call must return one tensor, got {type(output).__name__}")
        return CapturedCall(tensors_of(static), graph.replay, output)
