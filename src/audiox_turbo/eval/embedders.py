"""The audio embedder interface, checkpoint reading, and the registry of named embedders.

Every embedder takes waveforms at any rate (downmixed to mono and resampled with soxr) and
returns frame embeddings `(B, frames, dim)` or clip embeddings `(B, dim)`. Nothing downloads:
each one loads a local checkpoint and a missing file is a one-line `ModelLoadError`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.eval.features import Waveforms, mono_at_rate

EmbeddingKind = Literal["frames", "clip"]
ClassActivation = Literal["softmax", "sigmoid"]


@runtime_checkable
class Embedder(Protocol):
    """Waveforms `(B, C, S)` (or a list of `(C, S)` clips) at rate `sr` → embeddings."""

    name: str
    sample_rate: int
    dim: int
    kind: EmbeddingKind

    def embed(self, waveforms: Waveforms, sr: int) -> Tensor:
        """`(B, frames, dim)` for kind "frames", `(B, dim)` for kind "clip"."""
        ...


@runtime_checkable
class AudioTagger(Embedder, Protocol):
    """An embedder with a classification head (for KL divergence and Inception Score)."""

    num_classes: int
    activation: ClassActivation

    def classify(self, waveforms: Waveforms, sr: int) -> Tensor:
        """Class logits `(B, num_classes)`; `activation` says how they become probabilities."""
        ...

    def embed_and_classify(self, waveforms: Waveforms, sr: int) -> tuple[Tensor, Tensor]:
        """Clip embeddings `(B, dim)` and class logits `(B, num_classes)` in one pass."""
        ...


def _numpy_array_globals() -> list[object]:
    """What weights_only unpickling needs to rebuild plain numpy arrays (torchvggish's PCA file)."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    dtype_classes = [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int64)]
    return [_reconstruct, np.ndarray, np.dtype, *dtype_classes]


def read_state_dict(path: str | Path | None, expected: str) -> dict[str, Tensor]:
    """Tensors of a local checkpoint (`.safetensors` or a torch file read with weights_only;
    plain numpy arrays are accepted and converted).

    Nested `{"model": ...}` / `{"state_dict": ...}` dictionaries are unwrapped. `expected`
    names the published file for the error raised when `path` is missing.
    """
    if path is None or not Path(path).is_file():
        where = "no checkpoint path given" if path is None else f"{path}: checkpoint not found"
        raise ModelLoadError(f"{where}; expected {expected} (nothing is downloaded)")
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            with torch.serialization.safe_globals(_numpy_array_globals()):
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: cannot read checkpoint ({reason})") from exc
    while isinstance(state, dict):
        inner = state.get("model", state.get("state_dict"))
        if not isinstance(inner, dict):
            break
        state = inner
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: not a state dict of tensors; expected {expected}")
    state = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: not a state dict of tensors; expected {expected}")
    return state


def load_weights(module: nn.Module, state: dict[str, Tensor], path: str | Path) -> None:
    """Strictly load `state` into `module`; mismatches raise a one-line `ModelLoadError`."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [
            f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
            if keys
        ]
        detail = "; ".join(parts)
        raise ModelLoadError(f"{path}: weights do not match {type(module).__name__}: {detail}")
    module.load_state_dict(state)


class WaveformEmbedder:
    """Shared plumbing: mono + resampling, batching by `batch_size`, clips of unequal length."""

    name: str
    sample_rate: int
    dim: int
    kind: EmbeddingKind
    device: torch.device
    batch_size: int = 8

    def _forward(self, wave: Tensor) -> tuple[Tensor, ...]:
        """Mono `(B, S)` at `sample_rate` on `device` → per-clip outputs, batch first."""
        raise NotImplementedError

    def _outputs(self, waveforms: Waveforms, sr: int) -> tuple[Tensor, ...]:
        clips = mono_at_rate(waveforms, sr, self.sample_rate)
        if not clips:
            raise AudioXError(f"{self.name}: no audio clips to embed")
        if len({c.size for c in clips}) == 1:
            groups = [
                np.stack(clips[i : i + self.batch_size])
                for i in range(0, len(clips), self.batch_size)
            ]
        else:
            groups = [c[None] for c in clips]
        results = []
        with torch.inference_mode():
            for group in groups:
                out = self._forward(torch.from_numpy(group).to(self.device))
                results.append(tuple(o.float().cpu() for o in out))
        try:
            return tuple(torch.cat(parts) for parts in zip(*results, strict=True))
        except RuntimeError as exc:
            raise AudioXError(
                f"{self.name}: clips of unequal length give different frame counts; "
                "use embed_clips() to embed them one by one"
            ) from exc

    def embed(self, waveforms: Waveforms, sr: int) -> Tensor:
        """`(B, frames, dim)` or `(B, dim)` embeddings of `(B, C, S)` waveforms at rate `sr`."""
        return self._outputs(waveforms, sr)[0]


def embed_clips(embedder: Embedder, clips: Sequence[Tensor | np.ndarray], sr: int) -> list[Tensor]:
    """Embed clips of any lengths one at a time: list of `(frames, dim)` or `(dim,)`."""
    return [embedder.embed([clip], sr)[0] for clip in clips]


class LaionClapEmbedder:
    """LAION-CLAP (48 kHz) through the optional `laion_clap` package; clip embeddings and
    text embeddings for the CLAP score."""

    name = "clap"
    sample_rate = 48000
    kind: EmbeddingKind = "clip"

    def __init__(
        self,
        checkpoint: str | Path | None,
        device: str = "cpu",
        audio_model: str = "HTSAT-tiny",
        enable_fusion: bool = False,
    ) -> None:
        try:
            laion_clap = importlib.import_module("laion_clap")
        except ImportError as exc:
            raise AudioXError(
                "clap: the optional package laion_clap is not installed (pip install laion_clap)"
            ) from exc
        if checkpoint is None or not Path(checkpoint).is_file():
            where = "no checkpoint path given" if checkpoint is None else f"{checkpoint}: not found"
            raise ModelLoadError(
                f"{where}; expected a LAION-CLAP checkpoint such as 630k-audioset-best.pt"
            )
        try:
            self._model = laion_clap.CLAP_Module(
                enable_fusion=enable_fusion, amodel=audio_model, device=device
            )
            self._model.load_ckpt(str(checkpoint))
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{checkpoint}: cannot load LAION-CLAP ({reason})") from exc
        self.dim = 512

    def embed(self, waveforms: Waveforms, sr: int) -> Tensor:
        """Clip embeddings `(B, 512)` of waveforms at rate `sr` (resampled to 48 kHz)."""
        clips = mono_at_rate(waveforms, sr, self.sample_rate)
        out = []
        with torch.inference_mode():
            for clip in clips:
                data = torch.from_numpy(clip)[None]
                emb = self._model.get_audio_embedding_from_data(x=data, use_tensor=True)
                out.append(emb.float().cpu())
        return torch.cat(out)

    def embed_text(self, texts: Sequence[str]) -> Tensor:
        """Text embeddings `(len(texts), 512)` in the audio embedding space."""
        with torch.inference_mode():
            emb = self._model.get_text_embedding(list(texts), use_tensor=True)
        return emb.float().cpu()


EmbedderFactory = Callable[[Path | None, str], Embedder]
_FACTORIES: dict[str, EmbedderFactory] = {}


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make `get_embedder(name, checkpoint, device)` call `factory(checkpoint, device)`."""
    _FACTORIES[name.lower()] = factory


def available_embedders() -> list[str]:
    """Registered embedder names, sorted."""
    return sorted(_FACTORIES)


def get_embedder(name: str, checkpoint: str | Path | None = None, device: str = "cpu") -> Embedder:
    """The embedder registered under `name` (vggish | panns | passt | clap | judge | ...)."""
    factory = _FACTORIES.get(name.lower())
    if factory is None:
        names = ", ".join(available_embedders())
        raise AudioXError(f"unknown embedder {name!r}; choose one of {names}")
    return factory(None if checkpoint is None else Path(checkpoint), device)


def _vggish(checkpoint: Path | None, device: str) -> Embedder:
    from audiox_turbo.eval.vggish import load_vggish

    return load_vggish(checkpoint, device=device)


def _panns(checkpoint: Path | None, device: str) -> Embedder:
    from audiox_turbo.eval.panns import load_panns

    return load_panns(checkpoint, device=device)


def _passt(checkpoint: Path | None, device: str) -> Embedder:
    from audiox_turbo.eval.passt import load_passt

    return load_passt(checkpoint, device=device)


def _clap(checkpoint: Path | None, device: str) -> Embedder:
    return LaionClapEmbedder(checkpoint, device=device)


def _judge(checkpoint: Path | None, device: str) -> Embedder:
    """The world judge: the shipped weights unless a checkpoint is given."""
    from audiox_turbo.eval.judge import load_judge_embedder

    return load_judge_embedder(checkpoint, device)


for _name, _factory in (
    ("vggish", _vggish),
    ("panns", _panns),
    ("passt", _passt),
    ("clap", _clap),
    ("judge", _judge),
):
    register_embedder(_name, _factory)
