"""The generation pipeline: prompts in, waveforms out (diffusers-style surface)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torch import nn

from audiox_turbo.codec.build import Codec
from audiox_turbo.conditioning.audio import AUDIO_MODES, align_audio_prompt
from audiox_turbo.conditioning.conditioner import Conditioner, Conditions
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.config import ModelConfig, preset
from audiox_turbo.errors import AudioXError, MediaError, ModelLoadError
from audiox_turbo.flow.sampling import SamplerSettings
from audiox_turbo.interface import (
    AudioInput,
    GenerationOutput,
    GenerationRequest,
    Pipeline,
    Prompt,
    VideoInput,
    parameter_counts,
    parse_dtype,
    resolve_device,
)
from audiox_turbo.model.denoiser import Denoiser
from audiox_turbo.model.generation import sample_latents
from audiox_turbo.model.graphs import GraphedForward, require_cuda
from audiox_turbo.model_dir import (
    NATIVE_COMPONENTS,
    load_native_components,
    native_components,
    save_model_dir,
    shipped_model_dir,
)

DEFAULT_DURATION = 10.0
DEFAULT_TEACHER_STEPS = 100
DECODE_CHUNK_FRAMES = 1024


def _resolve_seed(seed: int | None) -> int:
    """The seed a generation uses: the caller's, else a fresh random one."""
    generator = torch.Generator(device="cpu")
    return generator.manual_seed(seed).initial_seed() if seed is not None else generator.seed()


def _as_list(value: Any, n: int | None = None) -> list[Any]:
    """A prompt argument as a list (a single prompt is broadcast to n items)."""
    if value is None:
        return [None] * (n or 1)
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * (n or 1)


class AudioXTurbo(Pipeline):
    """Codec + conditioner + denoiser; call it with prompts to generate audio."""

    def __init__(
        self, config: ModelConfig, codec: Codec, conditioner: Conditioner, denoiser: Denoiser
    ) -> None:
        self.config = config
        self.codec = codec.eval()
        self.conditioner = conditioner.eval()
        self.denoiser = denoiser.eval()
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.graphed: GraphedForward | None = None

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, config: ModelConfig, seed: int = 0, device: str | torch.device | None = None
    ) -> AudioXTurbo:
        """Randomly initialised model built directly on `device` (deterministic in `seed`)."""
        device = resolve_device(device) if device is not None else torch.device("cpu")
        model = cls(config, *native_components(config, seed, device).values())
        model.device = device
        return model

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, **kwargs: Any) -> AudioXTurbo:
        """A preset architecture with random weights."""
        try:
            config = preset(name)
        except ValueError as e:
            raise AudioXError(str(e)) from None
        device = kwargs.get("device")
        return cls.from_config(config, seed, device).to(device, kwargs.get("dtype"))

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str] | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ) -> AudioXTurbo:
        """Load a native model directory (config.json + codec/conditioning/denoiser
        .safetensors); no path: the default model shipped in the package."""
        if path is None:
            path = shipped_model_dir()
            if path is None:
                raise ModelLoadError("no default model is shipped in this install; give a path")
        config, components = load_native_components(path)
        return cls(config, *components.values()).to(device, dtype)

    @property
    def trained(self) -> bool:
        """False for random (preset) weights."""
        return self.config.trained

    @property
    def sample_rate(self) -> int:
        return self.config.codec.sample_rate

    def components(self) -> dict[str, nn.Module]:
        """The three components by model-directory name (codec, conditioning, denoiser)."""
        modules = (self.codec, self.conditioner, self.denoiser)
        return dict(zip(NATIVE_COMPONENTS, modules, strict=True))

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write config.json and one safetensors file per component; atomic per directory."""
        save_model_dir(path, self.config, self.components())

    def to(self, device: str | torch.device | None = None, dtype: Any = None) -> AudioXTurbo:
        """Move to a device; `dtype` applies to conditioner and denoiser (codec stays float32)."""
        self.device = resolve_device(device) if device is not None else self.device
        self.dtype = parse_dtype(dtype) if dtype is not None else self.dtype
        self.codec.to(self.device)
        self.conditioner.to(self.device, self.dtype)
        self.denoiser.to(self.device, self.dtype)
        if self.graphed is not None:  # graphs hold the old device's buffers: capture anew
            self.graphed = GraphedForward(self.denoiser) if self.device.type == "cuda" else None
        return self

    def enable_cuda_graphs(self, enabled: bool = True) -> AudioXTurbo:
        """Replay the denoiser through CUDA graphs (one per input shape; CUDA only).

        Removes the per-kernel launch cost that bounds few-step sampling at small batch; the
        first call of each shape pays a warm-up and a capture.
        """
        if enabled:
            require_cuda(self.device)
        self.graphed = GraphedForward(self.denoiser) if enabled else None
        return self

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per component (frozen external encoders are not part of the model)."""
        return parameter_counts(self.components())

    # generation -----------------------------------------------------------------------------
    def check_duration(self, duration: float | None) -> float:
        """A duration the model can generate (None: 10 s), or a clear AudioXError."""
        if duration is None:
            return DEFAULT_DURATION
        if not math.isfinite(duration) or duration <= 0:
            raise AudioXError(f"duration must be a positive number of seconds, got {duration}")
        if duration > self.config.max_duration:
            raise AudioXError(
                f"duration {duration:g} s exceeds this model's maximum "
                f"of {self.config.max_duration:g} s"
            )
        if self.config.num_samples(duration) < 1:
            raise AudioXError(f"duration {duration:g} s is shorter than one sample")
        return float(duration)

    def _video_frames(self, video: VideoInput, duration: float, start: float) -> torch.Tensor:
        """uint8 frames (Nv, 3, size, size) for one video prompt.

        A tensor prompt is (frames, 3, H, W), uint8 0..255 or float 0..1, already sampled at the
        model's video fps and starting at the clip's start (`video_start` applies to files).
        """
        c = self.config.conditioning
        n = self.config.video_frames(duration)
        if isinstance(video, torch.Tensor):
            frames = video
            if frames.is_floating_point():  # [0, 1] floats -> uint8 before any resizing
                frames = (frames.clamp(0, 1) * 255).round().to(torch.uint8)
            if frames.dim() != 4 or frames.shape[1] != 3:
                raise AudioXError(
                    f"video tensor must be (frames, 3, H, W), got {tuple(frames.shape)}"
                )
            if frames.shape[-1] != c.video_size or frames.shape[-2] != c.video_size:
                frames = (
                    torch.nn.functional.interpolate(
                        frames.float(),
                        size=(c.video_size, c.video_size),
                        mode="bilinear",
                        antialias=True,
                    )
                    .round()
                    .clamp(0, 255)
                    .to(torch.uint8)
                )
            index = torch.arange(n).clamp(max=frames.shape[0] - 1)
            return frames[index]
        from audiox_turbo.io.video import load_video_frames

        return load_video_frames(
            video, c.video_fps, c.video_size, start=start, duration=duration, num_frames=n
        )

    def _audio_latents(
        self, audio: AudioInput, sample_rate: int | None, duration: float
    ) -> torch.Tensor:
        """Codec latents (D, Ta) of the first `duration` s of one audio prompt (posterior mean)."""
        cfg = self.config.codec
        if isinstance(audio, torch.Tensor):
            wav = audio.float()
            if wav.dim() == 1:
                wav = wav.unsqueeze(0)
            if wav.dim() != 2 or wav.shape[0] > 8 or wav.shape[0] >= wav.shape[1]:
                raise AudioXError(
                    f"audio prompt tensor must be (samples,) or (channels, samples), "
                    f"got {tuple(audio.shape)}"
                )
            if sample_rate is not None and sample_rate != cfg.sample_rate:
                from audiox_turbo.io.audio import resample

                wav = resample(wav, sample_rate, cfg.sample_rate)
            if wav.shape[0] != cfg.audio_channels:
                wav = wav.mean(0, keepdim=True).expand(cfg.audio_channels, -1)
            if wav.shape[-1] == 0 or not torch.isfinite(wav).all():
                raise AudioXError("audio prompt tensor is empty or contains NaN/inf")
        else:
            from audiox_turbo.io.audio import load_audio

            wav, _ = load_audio(
                audio, sample_rate=cfg.sample_rate, channels=cfg.audio_channels, duration=duration
            )
        wav = wav[:, : self.config.num_samples(duration)]
        with torch.no_grad():
            return self.codec.encode(wav.unsqueeze(0).to(self.device), sample=False)[0]

    @torch.no_grad()
    def encode_prompts(
        self,
        text: Prompt = None,
        video: VideoInput | Sequence[VideoInput | None] | None = None,
        audio: AudioInput | Sequence[AudioInput | None] | None = None,
        audio_mode: str = "continue",
        span: tuple[float, float] | None = None,
        duration: float = DEFAULT_DURATION,
        video_start: float = 0.0,
        audio_sample_rate: int | None = None,
    ) -> Conditions:
        """Conditions (batch = number of prompts) for `duration` seconds of output."""
        return self.conditioner(
            self.condition_inputs(
                text, video, audio, audio_mode, span, duration, video_start, audio_sample_rate
            ),
            self.config.latent_frames(duration),
            duration,
        )

    def condition_inputs(
        self,
        text: Prompt,
        video: VideoInput | Sequence[VideoInput | None] | None,
        audio: AudioInput | Sequence[AudioInput | None] | None,
        audio_mode: str,
        span: tuple[float, float] | None,
        duration: float,
        video_start: float = 0.0,
        audio_sample_rate: int | None = None,
    ) -> ConditionInputs:
        """Prompts (single or lists of equal length) read, encoded and aligned for the model."""
        if audio_mode not in AUDIO_MODES:
            raise AudioXError(
                f"unknown audio mode {audio_mode!r}; use one of {', '.join(AUDIO_MODES)}"
            )
        sizes = [len(v) for v in (text, video, audio) if isinstance(v, (list, tuple))]
        if len(set(sizes)) > 1:
            raise AudioXError(f"prompt lists have different lengths {sizes}")
        b = sizes[0] if sizes else 1
        if b == 0:
            raise AudioXError("empty prompt list")
        texts, videos, audios = _as_list(text, b), _as_list(video, b), _as_list(audio, b)
        frames = self.config.latent_frames(duration)
        inputs = ConditionInputs(b, text=texts if any(t is not None for t in texts) else None)
        video_present = torch.tensor([v is not None for v in videos], device=self.device)
        if video_present.any():
            shots = [
                self._video_frames(v, duration, video_start) if v is not None else None
                for v in videos
            ]
            like = next(s for s in shots if s is not None)
            batch = torch.stack([s if s is not None else torch.zeros_like(like) for s in shots])
            inputs = dataclasses.replace(
                inputs, video=batch.to(self.device), video_present=video_present
            )
        audio_present = torch.tensor([a is not None for a in audios], device=self.device)
        if audio_present.any():
            prompt = torch.zeros(b, self.config.codec.latent_dim, frames, device=self.device)
            keep = torch.zeros(b, 1, frames, device=self.device)
            for i, a in enumerate(audios):
                if a is not None:
                    latents = self._audio_latents(a, audio_sample_rate, duration)
                    prompt[i], keep[i] = align_audio_prompt(
                        latents, audio_mode, span, duration, frames, self.config.codec.latent_rate
                    )
            reference = torch.full((b,), audio_mode == "reference", device=self.device)
            inputs = inputs.with_audio_prompt(prompt, keep, audio_present, reference)
        return inputs

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
        """Generate audio from any mix of text, video and audio prompts (audio mode: continue).

        Returns waveforms (num_prompts · num_outputs, channels, round(duration · sr)).
        """
        if sync_features is not None:
            raise AudioXError("sync features only apply to official-variant models")
        if num_outputs < 1:
            raise AudioXError(f"num_outputs must be ≥ 1, got {num_outputs}")
        audio_mode = audio_mode or "continue"
        duration = self.check_duration(
            self._default_duration(duration, video, audio, audio_mode, video_start)
        )
        settings = self.sampler_settings(method, steps, cfg, shift)
        seed = _resolve_seed(seed)
        inputs = self.condition_inputs(
            text, video, audio, audio_mode, span, duration, video_start, audio_sample_rate
        )
        wav, nfe = self._generate(inputs, duration, settings, [seed], num_outputs, callback)
        sampling = (settings.method, settings.steps, settings.cfg)
        return GenerationOutput(wav, self.sample_rate, nfe, duration, seed, *sampling)

    def batch_key(self, request: GenerationRequest) -> Hashable:
        """Requests batch together when they share duration, sampling options, num_outputs,
        audio mode, span, video start and which modalities they prompt with."""
        if request.sync_features is not None:
            raise AudioXError("sync features only apply to official-variant models")
        if request.num_outputs < 1:
            raise AudioXError(f"num_outputs must be ≥ 1, got {request.num_outputs}")
        audio_mode = request.audio_mode or "continue"
        duration = self.check_duration(
            self._default_duration(
                request.duration, request.video, request.audio, audio_mode, request.video_start
            )
        )
        settings = self.sampler_settings(request.method, request.steps, request.cfg, None)
        given = tuple(p is not None for p in (request.text, request.video, request.audio))
        options = (request.num_outputs, audio_mode, request.span, request.video_start)
        return (duration, settings, *options, *given)

    @torch.no_grad()
    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        callback: Callable[[int, int], None] | None = None,
    ) -> list[GenerationOutput]:
        """Requests with one `batch_key` as one batch; each output equals the request's own
        `self(**request.kwargs())` (per-request seeds; equal up to float rounding)."""
        if not requests:
            return []
        keys = {self.batch_key(r) for r in requests}
        if len(keys) > 1:
            raise AudioXError(
                "requests in one batch must share duration, sampling options, num_outputs, "
                "audio mode, span and prompt kinds"
            )
        duration, settings, num_outputs, audio_mode, span, video_start = next(iter(keys))[:6]
        seeds = [_resolve_seed(r.seed) for r in requests]
        texts, videos, audios = (
            [getattr(r, k) for r in requests] for k in ("text", "video", "audio")
        )
        inputs = self.condition_inputs(
            texts, videos, audios, audio_mode, span, duration, video_start
        )
        wav, nfe = self._generate(inputs, duration, settings, seeds, num_outputs, callback)
        rows = wav.split(num_outputs)
        sampling = (settings.method, settings.steps, settings.cfg)
        return [
            GenerationOutput(w, self.sample_rate, nfe, duration, seed, *sampling)
            for w, seed in zip(rows, seeds, strict=True)
        ]

    def _generate(
        self,
        inputs: ConditionInputs,
        duration: float,
        settings: SamplerSettings,
        seeds: list[int],
        num_outputs: int,
        callback: Callable[[int, int], None] | None,
    ) -> tuple[torch.Tensor, int]:
        """Waveforms (prompts · num_outputs, C, samples) on CPU and the NFE; `seeds` holds one
        seed for the whole batch or one per prompt."""
        cond = self.conditioner(inputs, self.config.latent_frames(duration), duration)
        cond = cond.repeat(num_outputs).to(self.device, self.dtype)
        denoiser = self.denoiser if self.graphed is None else self.graphed
        x0, nfe = sample_latents(
            denoiser, self.conditioner, cond, settings, seeds, duration, callback
        )
        x0 = x0.float()
        if inputs.audio_latents is not None and inputs.audio_keep is not None:
            keep = inputs.audio_keep.repeat_interleave(num_outputs, 0)
            prompt = inputs.audio_latents.repeat_interleave(num_outputs, 0)
            x0 = keep * prompt + (1 - keep) * x0
        wav = self.decode(x0)[..., : self.config.num_samples(duration)]
        return wav.clamp(-1, 1).cpu(), nfe

    def sampler_settings(
        self, method: str | None, steps: int | None, cfg: float | None, shift: float | None
    ) -> SamplerSettings:
        """The caller's sampling options, defaults from the model's own sampler kind."""
        sampler = self.config.sampler
        method = method or ("student" if sampler.kind == "student" else sampler.method)
        student = method == "student"
        if steps is None:  # the model's own steps for its own sampler kind
            own = student == (sampler.kind == "student")
            steps = sampler.steps if own else (4 if student else DEFAULT_TEACHER_STEPS)
        cfg = float(cfg if cfg is not None else (1.0 if student else sampler.cfg))
        shift = float(shift if shift is not None else sampler.shift)
        try:
            return SamplerSettings(method, int(steps), cfg, shift)
        except ValueError as e:
            raise AudioXError(str(e)) from None

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Waveform (B, C, T·downsampling) from latents, in bounded-memory chunks when long."""
        latents = latents.float()
        if latents.shape[-1] > DECODE_CHUNK_FRAMES:
            return self.codec.decode_chunked(latents, chunk_frames=DECODE_CHUNK_FRAMES)
        return self.codec.decode(latents)

    def _default_duration(
        self, duration: float | None, video: Any, audio: Any, audio_mode: str, video_start: float
    ) -> float:
        """The caller's duration, else the video's remaining length, else the audio's, else 10 s."""
        if duration is not None:
            return float(duration)
        first_video = next((v for v in _as_list(video) if v is not None), None)
        if first_video is not None and not isinstance(first_video, torch.Tensor):
            from audiox_turbo.io.video import video_duration

            seconds = video_duration(first_video)
            if seconds <= 0:  # a still image: no length of its own
                return DEFAULT_DURATION
            if video_start >= seconds:
                raise MediaError(
                    f"{first_video}: video_start {video_start:g} s is past its end ({seconds:g} s)"
                )
            return min(seconds - video_start, self.config.max_duration)
        first_audio = next((a for a in _as_list(audio) if a is not None), None)
        if (
            first_audio is not None
            and audio_mode == "inpaint"
            and not isinstance(first_audio, torch.Tensor)
        ):
            import soundfile as sf

            try:
                return float(sf.info(str(first_audio)).duration)
            except Exception:
                return DEFAULT_DURATION
        return DEFAULT_DURATION
