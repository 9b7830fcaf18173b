"""The released AudioX-Turbo network behind the `Pipeline` interface (`interface.py`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from audiox_turbo.errors import AudioXError, MediaError
from audiox_turbo.interface import (
    AudioInput,
    GenerationOutput,
    Pipeline,
    Prompt,
    VideoInput,
    parameter_counts,
    parse_dtype,
    resolve_device,
)
from audiox_turbo.official.model import OfficialAudioXTurbo

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


class OfficialPipeline(Pipeline):
    """The released network behind the `Pipeline` interface (video/audio prompts from files)."""

    def __init__(self, model: OfficialAudioXTurbo) -> None:
        self.model = model
        self.config = model.config

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], device: str | None = None, dtype: str | None = None
    ) -> OfficialPipeline:
        """Load a model directory written by `convert official` or `save_pretrained`."""
        torch_dtype = None if dtype in (None, "float32") else parse_dtype(dtype)
        return cls(OfficialAudioXTurbo.from_pretrained(path, resolve_device(device), torch_dtype))

    @property
    def trained(self) -> bool:
        """Converted released weights are trained."""
        return True

    @property
    def sample_rate(self) -> int:
        return self.config.codec.sample_rate

    @property
    def device(self) -> torch.device:
        return self.model.device

    def to(self, device: str | torch.device | None = None, dtype: Any = None) -> OfficialPipeline:
        """Move to a device and/or cast (the two VAEs stay float32, as officially)."""
        if device is not None:
            self.model.to(resolve_device(device))
        if dtype is not None:
            self.model.cast(parse_dtype(dtype))
        return self

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write the official model directory (config.json, components, text encoder)."""
        self.model.save_pretrained(path)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, C, samples) float32 from latents (B, latent_dim, 236)."""
        return self.model.codec.decode(latents.float())

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
        return parameter_counts(
            {n: m for n, m in self.model.named_children() if n != "text_encoder"}
        )

    def _video(self, video: Any, start: float) -> torch.Tensor | None:
        if video is None or isinstance(video, torch.Tensor):
            return video
        from audiox_turbo.io.video import load_video_frames

        c = self.config
        seconds = c.video_frames / 5.0
        return load_video_frames(video, 5.0, c.clip_image_size, start=start, duration=seconds)

    def _audio(self, audio: Any, sample_rate: int | None) -> torch.Tensor | None:
        codec = self.config.codec
        if audio is None:
            return None
        if isinstance(audio, torch.Tensor):
            if sample_rate is None or sample_rate == codec.sample_rate:
                return audio
            from audiox_turbo.io.audio import resample

            return resample(audio.float(), sample_rate, codec.sample_rate)
        from audiox_turbo.io.audio import load_audio

        return load_audio(audio, sample_rate=codec.sample_rate, channels=codec.audio_channels)[0]

    @torch.no_grad()
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
        """Generate with the released network: one 10.96 s clip per prompt and output."""
        if audio is not None and (audio_mode not in (None, "reference") or span is not None):
            raise AudioXError("the official model takes the audio prompt as a whole 10 s clip only")
        if isinstance(video, (list, tuple)) or isinstance(audio, (list, tuple)):
            raise AudioXError("the official model takes one video and one audio prompt per call")
        if method is not None and method not in METHODS:
            raise AudioXError(f"unknown method {method!r} for the official model: student or euler")
        if shift not in (None, 1.0):
            raise AudioXError("the official samplers use unshifted timesteps: leave shift unset")
        if isinstance(sync_features, (str, os.PathLike)):
            sync_features = load_sync_features(sync_features)
        seed = 0 if seed is None else seed
        wav, sr = self.model.generate(
            text=[t or "" for t in text] if isinstance(text, (list, tuple)) else text,
            video_frames=self._video(video, video_start),
            sync_features=sync_features,
            audio=self._audio(audio, audio_sample_rate),
            duration=duration,
            steps=steps,
            cfg=cfg,
            seed=seed,
            num_outputs=num_outputs,
            callback=callback,
            sampler=METHODS[method or "student"],
        )
        method = method or "student"
        steps_run = steps if steps is not None else self.config.steps
        cfg_run = cfg if cfg is not None else self.config.cfg
        nfe = steps_run * (2 if method == "euler" and cfg_run != 1.0 else 1)
        return GenerationOutput(
            wav, sr, nfe, wav.shape[-1] / sr, seed, method, steps_run, float(cfg_run)
        )
