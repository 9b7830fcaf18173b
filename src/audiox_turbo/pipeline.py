"""The generation pipeline: prompts in, waveforms out (diffusers-style surface)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from audiox_turbo.atomic import atomic_directory, write_json_atomic
from audiox_turbo.codec.oobleck import OobleckVAE
from audiox_turbo.conditioning.audio import AUDIO_MODES, audio_keep_mask
from audiox_turbo.conditioning.conditioner import Conditioner, Conditions
from audiox_turbo.config import ModelConfig, from_dict, preset, to_dict
from audiox_turbo.errors import AudioXError, MediaError, ModelLoadError
from audiox_turbo.flow.sampling import (
    NFECounter,
    guided_velocity,
    sample_euler,
    sample_heun,
    sample_student,
    student_timesteps,
    teacher_timesteps,
)
from audiox_turbo.model.denoiser import Denoiser
from audiox_turbo.model.graphs import GraphedForward, require_cuda

COMPONENTS = ("codec", "conditioning", "denoiser")
DEFAULT_DURATION = 10.0
DEFAULT_TEACHER_STEPS = 100
DECODE_CHUNK_FRAMES = 1024

AudioInput = str | os.PathLike[str] | torch.Tensor
VideoInput = str | os.PathLike[str] | torch.Tensor


@dataclass
class GenerationOutput:
    """Generated audio: waveforms (B, channels, samples) float32 on CPU in [-1, 1]."""

    waveforms: torch.Tensor
    sample_rate: int
    nfe: int
    duration: float
    seed: int | None = None


def shipped_model_dir() -> Path | None:
    """The default model shipped in the package assets, if this install has one."""
    path = Path(__file__).parent / "assets" / "default"
    return path if (path / "config.json").is_file() else None


def _as_list(value: Any, n: int | None = None) -> list[Any]:
    """A prompt argument as a list (a single prompt is broadcast to n items)."""
    if value is None:
        return [None] * (n or 1)
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * (n or 1)


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


def _check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    """Raise a one-line ModelLoadError listing missing, unexpected and mis-shaped keys."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    if problems:
        raise ModelLoadError(f"{file}: weights do not match config.json: {'; '.join(problems)}")


class AudioXTurbo:
    """Codec + conditioner + denoiser; call it with prompts to generate audio."""

    def __init__(
        self, config: ModelConfig, codec: OobleckVAE, conditioner: Conditioner, denoiser: Denoiser
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
        rng_devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices), device:
            torch.manual_seed(seed)
            model = cls(config, OobleckVAE(config.codec), Conditioner(config), Denoiser(config))
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
        cls, path: str | os.PathLike[str], device: str | None = None, dtype: str | None = None
    ) -> AudioXTurbo:
        """Load a model directory: config.json + codec/conditioning/denoiser .safetensors."""
        root = Path(path)
        config_file = root / "config.json"
        if not root.is_dir():
            raise ModelLoadError(f"{root}: model directory not found")
        if not config_file.is_file():
            raise ModelLoadError(f"{config_file}: missing (not a model directory)")
        import json

        from audiox_turbo.official.model import official_variant

        if official_variant(config_file):
            from audiox_turbo.official.pipeline import OfficialPipeline

            return OfficialPipeline.from_pretrained(root, device=device, dtype=dtype)

        try:
            data = json.loads(config_file.read_text())
            config = from_dict(ModelConfig, data)
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{config_file}: invalid config ({e})") from None
        try:
            with torch.device("meta"):
                model = cls(config, OobleckVAE(config.codec), Conditioner(config), Denoiser(config))
        except (AttributeError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{config_file}: invalid config ({e})") from None
        for name, module in zip(COMPONENTS, model.modules(), strict=True):
            file = root / f"{name}.safetensors"
            if not file.is_file():
                raise ModelLoadError(f"{file}: missing weights file")
            try:
                state = load_file(file)
            except Exception as e:
                raise ModelLoadError(f"{file}: unreadable safetensors ({e})") from None
            _check_state_dict(module, state, file)
            # fresh (aligned) copies: safetensors offsets can change the CPU kernels' rounding
            for key in list(state):
                state[key] = state.pop(key).clone()
            module.load_state_dict(state, strict=True, assign=True)
        return model.to(device, dtype)

    @classmethod
    def load(cls, path_or_preset: str | os.PathLike[str], **kwargs: Any) -> AudioXTurbo:
        """A model directory if `path_or_preset` is one, else a preset name."""
        if Path(path_or_preset).exists():
            return cls.from_pretrained(path_or_preset, **kwargs)
        return cls.from_preset(str(path_or_preset), **kwargs)

    @property
    def trained(self) -> bool:
        """False for random (preset) weights."""
        return self.config.trained

    def modules(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The three components in COMPONENTS order."""
        return self.codec, self.conditioner, self.denoiser

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write config.json and one safetensors file per component; atomic per directory."""
        with atomic_directory(path) as tmp:
            write_json_atomic(tmp / "config.json", to_dict(self.config))
            for name, module in zip(COMPONENTS, self.modules(), strict=True):
                state = {
                    k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()
                }
                save_file(state, tmp / f"{name}.safetensors", metadata={"format": "pt"})

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
        counts = {
            n: sum(p.numel() for p in m.parameters())
            for n, m in zip(COMPONENTS, self.modules(), strict=True)
        }
        counts["total"] = sum(counts.values())
        return counts

    # generation -----------------------------------------------------------------------------
    def check_duration(self, duration: float) -> float:
        """A duration the model can generate, or a clear AudioXError."""
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

    def _audio_prompt(
        self,
        latents: torch.Tensor,
        mode: str,
        span: tuple[float, float] | None,
        duration: float,
        frames: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents aligned to the output (D, T) and the keep mask (1, T) for one prompt."""
        have = latents.shape[-1]
        if mode == "reference":
            aligned = latents[:, torch.arange(frames, device=latents.device) % have]
            return aligned, torch.zeros(1, frames, device=latents.device)
        aligned = torch.nn.functional.pad(latents[:, :frames], (0, max(0, frames - have)))
        if mode == "continue":
            prompt_seconds = have / self.config.codec.latent_rate
            span = span or (0.0, min(prompt_seconds, duration))
        elif span is None:
            raise AudioXError(
                "audio mode 'inpaint' needs a span (start, end) in seconds to regenerate"
            )
        keep = audio_keep_mask(mode, frames, span, duration, 1)[0].to(latents.device)
        keep[:, have:] = 0.0
        return aligned, keep

    @torch.no_grad()
    def encode_prompts(
        self,
        text: str | Sequence[str | None] | None = None,
        video: VideoInput | Sequence[VideoInput | None] | None = None,
        audio: AudioInput | Sequence[AudioInput | None] | None = None,
        audio_mode: str = "continue",
        span: tuple[float, float] | None = None,
        duration: float = DEFAULT_DURATION,
        video_start: float = 0.0,
        audio_sample_rate: int | None = None,
    ) -> tuple[Conditions, torch.Tensor, torch.Tensor]:
        """Conditions for a batch of prompts, plus prompt latents (B, D, T) and keep (B, 1, T)."""
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
        latent_dim = self.config.codec.latent_dim
        video_batch = None
        video_present = torch.tensor([v is not None for v in videos])
        if video_present.any():
            shots = [
                self._video_frames(v, duration, video_start) if v is not None else None
                for v in videos
            ]
            like = next(s for s in shots if s is not None)
            video_batch = torch.stack(
                [s if s is not None else torch.zeros_like(like) for s in shots]
            )
        prompt = torch.zeros(b, latent_dim, frames, device=self.device)
        keep = torch.zeros(b, 1, frames, device=self.device)
        audio_present = torch.tensor([a is not None for a in audios])
        for i, a in enumerate(audios):
            if a is not None:
                latents = self._audio_latents(a, audio_sample_rate, duration)
                prompt[i], keep[i] = self._audio_prompt(latents, audio_mode, span, duration, frames)
        cond = self.conditioner(
            b,
            frames,
            duration,
            text=texts if any(t is not None for t in texts) else None,
            video=video_batch.to(self.device) if video_batch is not None else None,
            video_present=video_present.to(self.device),
            audio_latents=prompt if audio_present.any() else None,
            audio_keep=keep if audio_present.any() else None,
            audio_present=audio_present.to(self.device),
            audio_reference=torch.full((b,), audio_mode == "reference", device=self.device),
        )
        return cond, prompt, keep

    def velocity_fn(
        self, cond: Conditions, cfg: float, duration: float
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """v(x_t, t) for the sampler: plain, or CFG with cond and uncond in one batched forward."""
        denoiser = self.denoiser if self.graphed is None else self.graphed
        if cfg == 1.0:
            return lambda x, t: denoiser(x, t, cond)
        b, frames = cond.prompt.shape[0], cond.prompt.shape[-1]
        uncond = self.conditioner.unconditional(b, frames, duration).to(self.device, self.dtype)
        pair = Conditions.cat([cond, uncond])
        return guided_velocity(lambda x2, t2: denoiser(x2, t2, pair), cfg)

    @torch.no_grad()
    def __call__(
        self,
        text: str | Sequence[str | None] | None = None,
        video: VideoInput | Sequence[VideoInput | None] | None = None,
        audio: AudioInput | Sequence[AudioInput | None] | None = None,
        audio_mode: str = "continue",
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
        callback: Callable[[int, int], None] | None = None,
    ) -> GenerationOutput:
        """Generate audio from any mix of text, video and audio prompts.

        Returns waveforms (num_prompts · num_outputs, channels, round(duration · sr)).
        """
        sampler = self.config.sampler
        duration = self.check_duration(
            self._default_duration(duration, video, audio, audio_mode, video_start)
        )
        method = method or ("student" if sampler.kind == "student" else sampler.method)
        student = method == "student"
        if steps is None:  # the model's own steps for its own sampler kind
            own = student == (sampler.kind == "student")
            steps = sampler.steps if own else (4 if student else DEFAULT_TEACHER_STEPS)
        steps = int(steps)
        cfg = float(cfg if cfg is not None else (1.0 if student else sampler.cfg))
        shift = float(shift if shift is not None else sampler.shift)
        if steps < 1 or steps > 1000:
            raise AudioXError(f"steps must be in 1..1000, got {steps}")
        if num_outputs < 1:
            raise AudioXError(f"num_outputs must be ≥ 1, got {num_outputs}")
        if not math.isfinite(cfg) or cfg < 0:
            raise AudioXError(f"cfg must be a finite number ≥ 0, got {cfg}")
        if method not in ("euler", "heun", "student"):
            raise AudioXError(f"unknown sampling method {method!r}; use euler, heun or student")
        if student and cfg != 1.0:
            raise AudioXError("the few-step student sampler runs without CFG: use cfg=1")
        cond, prompt, keep = self.encode_prompts(
            text, video, audio, audio_mode, span, duration, video_start, audio_sample_rate
        )
        cond = cond.repeat(num_outputs).to(self.device, self.dtype)
        prompt, keep = (
            prompt.repeat_interleave(num_outputs, 0),
            keep.repeat_interleave(num_outputs, 0),
        )
        b, frames = prompt.shape[0], prompt.shape[-1]
        generator = torch.Generator(device="cpu")
        seed = generator.manual_seed(seed).initial_seed() if seed is not None else generator.seed()
        noise = torch.randn(b, self.config.codec.latent_dim, frames, generator=generator).to(
            self.device
        )
        counter = NFECounter(
            self.velocity_fn(cond, cfg, duration), nfe_per_forward=2 if cfg != 1.0 else 1
        )
        if student:
            renoise = torch.Generator(self.device).manual_seed(generator.initial_seed() + 1)
            x0 = sample_student(counter, noise, student_timesteps(steps, shift), renoise, callback)
        else:
            run = sample_euler if method == "euler" else sample_heun
            x0 = run(counter, noise, teacher_timesteps(steps, shift), callback)
        x0 = keep * prompt + (1 - keep) * x0.float()
        wav = self.decode(x0)[..., : self.config.num_samples(duration)]
        return GenerationOutput(
            wav.clamp(-1, 1).cpu(), self.config.codec.sample_rate, counter.nfe, duration, seed
        )

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
