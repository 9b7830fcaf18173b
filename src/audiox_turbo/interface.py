"""What every generation pipeline offers (`AudioXTurbo`, `OfficialPipeline`), its output, and
the device/dtype parsing both share. The CLI, eval/ and serving program against `Pipeline`."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from audiox_turbo.errors import AudioXError

AudioInput = str | os.PathLike[str] | torch.Tensor
VideoInput = str | os.PathLike[str] | torch.Tensor
Prompt = str | Sequence[str | None] | None


@dataclass
class GenerationOutput:
    """Generated audio: waveforms (B, channels, samples) float32 on CPU in [-1, 1], and the
    sampling that made it (method, steps, cfg as used, defaults resolved)."""

    waveforms: torch.Tensor
    sample_rate: int
    nfe: int
    duration: float
    seed: int
    method: str
    steps: int
    cfg: float


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt (text, video and/or audio) and its options, as `Pipeline.__call__` takes them."""

    text: str | None = None
    video: VideoInput | None = None
    audio: AudioInput | None = None
    audio_mode: str | None = None
    span: tuple[float, float] | None = None
    duration: float | None = None
    steps: int | None = None
    cfg: float | None = None
    seed: int | None = None
    num_outputs: int = 1
    method: str | None = None
    video_start: float = 0.0
    sync_features: str | os.PathLike[str] | torch.Tensor | None = None

    def kwargs(self) -> dict[str, Any]:
        """The request as keyword arguments of `Pipeline.__call__`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype:
    """'float32' | 'bfloat16' | 'float16' (or a torch dtype) -> torch dtype; None -> float32."""
    if name is None or isinstance(name, torch.dtype):
        return name or torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise AudioXError(f"unknown dtype {name!r}; use one of {', '.join(table)}")
    return table[name]


def resolve_device(name: str | torch.device | None) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable device is a clear error."""
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AudioXError("device 'cuda' requested but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise AudioXError("device 'mps' requested but MPS is not available")
    return device


def parameter_counts(components: dict[str, nn.Module]) -> dict[str, int]:
    """Parameters per named component, plus their "total"."""
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in components.items()}
    counts["total"] = sum(counts.values())
    return counts


class Pipeline(ABC):
    """Prompts in, waveforms out. Options a pipeline cannot honour raise an AudioXError."""

    config: Any
    device: torch.device

    @property
    @abstractmethod
    def trained(self) -> bool:
        """False for random (preset) weights."""

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Sample rate (Hz) of the generated waveforms."""

    @abstractmethod
    def __call__(
        self,
        text: Prompt = None,
        video: VideoInput | Sequence[VideoInput | None] | None = None,
        audio: AudioInput | Sequence[AudioInput | None] | None = None,
        audio_mode: str | None = None,
        span: tuple[float, float] | None = None,
        duration: float | None = None,
        steps: int | None = None,
        cfg: float | None = None,
        seed: int | None = None,
        num_outputs: int = 1,
        method: str | None = None,
        shift: float | None = None,
        video_start: float = 0.0,
        audio_sample_rate: int | None = None,
        sync_features: str | os.PathLike[str] | torch.Tensor | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> GenerationOutput:
        """Generate (num_prompts · num_outputs, channels, samples) from any mix of prompts."""

    def batch_key(self, request: GenerationRequest) -> Hashable | None:
        """Requests with the same key (not None) may share one `generate_batch` call; None: the
        request runs alone. Invalid options raise an AudioXError."""
        return None

    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        callback: Callable[[int, int], None] | None = None,
    ) -> list[GenerationOutput]:
        """One output per request, each what `self(**request.kwargs())` makes alone (this
        default runs them one by one; pipelines that batch override it)."""
        return [self(**request.kwargs(), callback=callback) for request in requests]

    @abstractmethod
    def to(self, device: str | torch.device | None = None, dtype: Any = None) -> Pipeline:
        """Move to a device and/or cast to a dtype (codecs stay float32); returns self."""

    @abstractmethod
    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write the model directory (config.json + safetensors) atomically."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, C, samples) float32 from latents (B, latent_dim, T)."""

    @abstractmethod
    def check_duration(self, duration: float | None) -> float:
        """The duration this model will generate for `duration` (None: its default)."""

    @abstractmethod
    def parameter_counts(self) -> dict[str, int]:
        """Parameters per component and in total."""

    @abstractmethod
    def enable_cuda_graphs(self, enabled: bool = True) -> Pipeline:
        """Replay the denoiser through CUDA graphs (CUDA only); returns self."""
