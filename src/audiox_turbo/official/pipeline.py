"""The released AudioX-Turbo network behind the same call surface as `AudioXTurbo`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from audiox_turbo.errors import AudioXError, MediaError
from audiox_turbo.official.model import OfficialAudioXTurbo
from audiox_turbo.pipeline import GenerationOutput

METHODS = {"student": "dmd", "euler": "euler"}


def load_sync_features(path: str | os.PathLike[str]) -> torch.Tensor:
    """Synchformer features (240, 768) from a .npy or a one-tensor .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: sync-feature file not found")
    try:
        if path.suffix == ".npy":
            import numpy as np

            return torch.from_numpy(np.load(path, allow_pickle=False)).float()
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(path)
            if len(tensors) != 1:
                raise MediaError(f"{path}: expected one tensor, found {sorted(tensors)}")
            return next(iter(tensors.values())).float()
    except Exception as e:  # numpy and safetensors raise their own error types
        if isinstance(e, MediaError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MediaError(f"{path}: unreadable sync features ({first})") from None
    raise MediaError(f"{path}: sync features must be .npy or .safetensors")


class OfficialPipeline:
    """Loads video/audio prompts from files and calls `OfficialAudioXTurbo.generate`."""

    trained = True

    def __init__(self, model: OfficialAudioXTurbo) -> None:
        self.model = model
        self.config = model.config

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], device: str | None = None, dtype: str | None = None
    ) -> OfficialPipeline:
        from audiox_turbo.pipeline import parse_dtype, resolve_device

        torch_dtype = None if dtype in (None, "float32") else parse_dtype(dtype)
        return cls(OfficialAudioXTurbo.from_pretrained(path, resolve_device(device), torch_dtype))

    @property
    def device(self) -> torch.device:
        return self.model.device

    def enable_cuda_graphs(self, enabled: bool = True) -> OfficialPipeline:
        """Replay the MMDiT through CUDA graphs during generation (CUDA only)."""
        self.model.enable_cuda_graphs(enabled)
        return self

    def check_duration(self, duration: float | None) -> float:
        """The official length (10.96 s) for None; any other duration is an AudioXError."""
        self.model.check_duration(duration)
        return self.config.duration if duration is None else float(duration)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per top-level component (T5 is outside the model, as officially)."""
        counts = {
            name: sum(p.numel() for p in module.parameters())
            for name, module in self.model.named_children()
            if name != "text_encoder"
        }
        counts["total"] = sum(counts.values())
        return counts

    def _video(self, video: Any, start: float) -> torch.Tensor | None:
        if video is None or isinstance(video, torch.Tensor):
            return video
        from audiox_turbo.io.video import load_video_frames

        c = self.config
        seconds = c.video_frames / 5.0
        return load_video_frames(video, 5.0, c.clip_image_size, start=start, duration=seconds)

    def _audio(self, audio: Any) -> torch.Tensor | None:
        if audio is None or isinstance(audio, torch.Tensor):
            return audio
        from audiox_turbo.io.audio import load_audio

        codec = self.config.codec
        return load_audio(audio, sample_rate=codec.sample_rate, channels=codec.audio_channels)[0]

    def __call__(
        self,
        text: str | Sequence[str | None] | None = None,
        video: Any = None,
        audio: Any = None,
        audio_mode: str = "reference",
        span: tuple[float, float] | None = None,
        duration: float | None = None,
        steps: int | None = None,
        cfg: float | None = None,
        seed: int | None = None,
        num_outputs: int = 1,
        method: str | None = None,
        video_start: float = 0.0,
        sync_features: str | os.PathLike[str] | torch.Tensor | None = None,
        callback: Callable[[int, int], None] | None = None,
        **unused: Any,
    ) -> GenerationOutput:
        """Generate with the released network: one 10.96 s clip per prompt and output."""
        if audio is not None and (audio_mode != "reference" or span is not None):
            raise AudioXError("the official model takes the audio prompt as a whole 10 s clip only")
        if isinstance(video, (list, tuple)) or isinstance(audio, (list, tuple)):
            raise AudioXError("the official model takes one video and one audio prompt per call")
        if method is not None and method not in METHODS:
            raise AudioXError(f"unknown method {method!r} for the official model: student or euler")
        if steps is not None and steps < 1:
            raise AudioXError(f"steps must be >= 1, got {steps}")
        if isinstance(sync_features, (str, os.PathLike)):
            sync_features = load_sync_features(sync_features)
        wav, sr = self.model.generate(
            text=[t or "" for t in text] if isinstance(text, (list, tuple)) else text,
            video_frames=self._video(video, video_start),
            sync_features=sync_features,
            audio=self._audio(audio),
            duration=duration,
            steps=steps,
            cfg=cfg,
            seed=0 if seed is None else seed,
            num_outputs=num_outputs,
            callback=callback,
            sampler=METHODS[method or "student"],
        )
        steps_run = steps if steps is not None else self.config.steps
        guided = (cfg if cfg is not None else self.config.cfg) != 1.0
        nfe_per_step = 2 if (method or "student") == "euler" and guided else 1
        return GenerationOutput(wav, sr, steps_run * nfe_per_step, wav.shape[-1] / sr)
