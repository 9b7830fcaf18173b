"""OfficialAudioXTurbo: the released AudioX-Turbo network as one model, its directory format
and its `generate` (spec §0, §6.3).

A model directory holds `config.json` ("variant": "official"), one safetensors per component
(`denoiser`, `fusion`, `conditioning`, `codec`) and, optionally, a `text_encoder/` HF dir with
the T5 encoder and tokenizer (T5 is not part of the released checkpoint) and
`synchformer.safetensors`, the video feature extractor (when config.json has `synchformer`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from audiox_turbo.atomic import atomic_directory
from audiox_turbo.codec.oobleck import OobleckVAE
from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.flow.sampling import ProgressCallback, SamplerSettings
from audiox_turbo.model.graphs import GraphedForward, require_cuda
from audiox_turbo.official.audio_prompt import OfficialAudioPromptConditioner
from audiox_turbo.official.config import VARIANT, OfficialConfig
from audiox_turbo.official.fusion import OfficialFusion
from audiox_turbo.official.mmdit import OfficialMMDiT
from audiox_turbo.official.sampling import sample_official
from audiox_turbo.official.synchformer import SynchformerVideoEncoder, normalize_sync_frames
from audiox_turbo.official.text import OfficialTextConditioner
from audiox_turbo.official.video import OfficialVideoConditioner, prepare_clip_frames
from audiox_turbo.weights import read_safetensors, write_safetensors

COMPONENT_FILES: dict[str, tuple[str, ...]] = {
    "denoiser": ("denoiser",),
    "fusion": ("fusion",),
    "conditioning": ("video", "audio_prompt"),
    "codec": ("codec",),
}
TEXT_ENCODER_DIR = "text_encoder"
SYNCHFORMER_FILE = "synchformer.safetensors"
NO_SYNCHFORMER = (
    "this official model has no Synchformer extractor to compute sync features from the video; "
    "add it with `audiox-turbo convert synchformer --model DIR --synchformer "
    "synchformer_state_dict.pth`, or pass --sync-features FILE"
)
SAMPLERS = ("dmd", "euler")


def _as_batch(x: Tensor, item_dims: int, batch: int, what: str) -> Tensor:
    """A per-item tensor (item_dims axes) or a batch of them -> (batch, ...)."""
    if x.ndim == item_dims:
        x = x.unsqueeze(0)
    if x.ndim != item_dims + 1:
        raise AudioXError(f"{what}: expected {item_dims} or {item_dims + 1} axes, got {x.ndim}")
    if x.shape[0] == 1:
        return x.expand(batch, *x.shape[1:])
    if x.shape[0] != batch:
        raise AudioXError(f"{what}: batch {x.shape[0]} does not match {batch} prompts")
    return x


def fit_prompt(wav: Tensor, samples: int) -> Tensor:
    """(B,C,N) -> (B,C,samples): first `samples` kept, short prompts left-padded with zeros."""
    wav = wav[..., :samples]
    return torch.nn.functional.pad(wav, (samples - wav.shape[-1], 0))


class OfficialAudioXTurbo(nn.Module):
    """Conditioners + MAF + MMDiT + Oobleck VAE of the released model (T5 held outside)."""

    def __init__(
        self, config: OfficialConfig, text_encoder: OfficialTextConditioner | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.denoiser = OfficialMMDiT(config)
        self.fusion = OfficialFusion(config)
        self.video = OfficialVideoConditioner(config)
        self.audio_prompt = OfficialAudioPromptConditioner(config)
        self.codec = OobleckVAE(config.codec)
        self.synchformer = (
            SynchformerVideoEncoder(config.synchformer) if config.synchformer is not None else None
        )
        self.text_encoder = text_encoder
        self.graphed: GraphedForward | None = None
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.denoiser.transformer.project_in.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.transformer.project_in.weight.dtype

    def enable_cuda_graphs(self, enabled: bool = True) -> OfficialAudioXTurbo:
        """Replay the MMDiT through CUDA graphs during `generate` (CUDA only)."""
        if enabled:
            require_cuda(self.device)
        self.graphed = GraphedForward(self.denoiser) if enabled else None
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> OfficialAudioXTurbo:
        """Every move or cast (`to`, `cuda`, `half`, ...) invalidates captured graphs."""
        out = super()._apply(fn, recurse)
        if self.graphed is not None:
            self.graphed = GraphedForward(self.denoiser)
        return out

    def cast(self, dtype: torch.dtype) -> OfficialAudioXTurbo:
        """Cast everything but the two VAEs, which stay float32 (the official decodes in fp32)."""
        for module in (self.denoiser, self.fusion, self.video, self.synchformer):
            if module is not None:
                module.to(dtype)
        if self.graphed is not None:  # the MMDiT's weights moved: capture anew
            self.graphed = GraphedForward(self.denoiser)
        self.audio_prompt.proj_out.to(dtype)
        self.audio_prompt.proj_features_128.to(dtype)
        return self

    def component_state(self, component: str) -> dict[str, Tensor]:
        """State dict of one component file, keys prefixed by its module names."""
        state: dict[str, Tensor] = {}
        for name in COMPONENT_FILES[component]:
            module = getattr(self, name)
            prefix = f"{name}." if len(COMPONENT_FILES[component]) > 1 else ""
            state.update({prefix + k: v for k, v in module.state_dict().items()})
        return state

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write config.json + one safetensors per component (+ text_encoder/ if loaded)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for component in COMPONENT_FILES:
            write_safetensors(path / f"{component}.safetensors", self.component_state(component))
        if self.synchformer is not None:
            write_safetensors(path / SYNCHFORMER_FILE, self.synchformer.state_dict())
        config = self.config
        if self.text_encoder is not None:
            self._save_text_encoder(path / TEXT_ENCODER_DIR)
            config = replace(config, text_encoder=TEXT_ENCODER_DIR)
        config.save(path / "config.json")

    def _save_text_encoder(self, target: Path) -> None:
        assert self.text_encoder is not None
        with atomic_directory(target) as tmp:
            self.text_encoder.encoder.save_pretrained(tmp)
            self.text_encoder.tokenizer.save_pretrained(tmp)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> OfficialAudioXTurbo:
        """Load a model dir written by `save_pretrained` or `convert_official`."""
        path = Path(path)
        config = OfficialConfig.load(path / "config.json")
        device = torch.device(device or "cpu")
        with torch.device("meta"):
            model = cls(config)
        state: dict[str, Tensor] = {}
        for component, names in COMPONENT_FILES.items():
            prefix = "" if len(names) > 1 else f"{names[0]}."
            part = read_safetensors(path / f"{component}.safetensors", device=str(device))
            state.update({prefix + k: v for k, v in part.items()})
        if config.synchformer is not None:
            part = read_safetensors(path / SYNCHFORMER_FILE, device=str(device))
            state.update({f"synchformer.{k}": v for k, v in part.items()})
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as e:
            detail = " ".join(str(e).split())[:300]
            raise ModelLoadError(f"{path}: weights do not match config.json ({detail})") from None
        model.restore_buffers(device)
        if dtype is not None:
            model.cast(dtype)
        if config.text_encoder is not None:
            model.text_encoder = OfficialTextConditioner.from_dir(
                path / config.text_encoder, config.text_max_tokens, device
            )
        return model

    def restore_buffers(self, device: torch.device) -> None:
        """Recreate the non-persistent CLIP position ids after a meta-device construction."""
        clip = self.video.visual_encoder_model
        if clip is not None:
            embeddings = clip.vision_model.embeddings
            positions = torch.arange(embeddings.num_positions, device=device).expand(1, -1)
            embeddings.register_buffer("position_ids", positions, persistent=False)

    def require_text_encoder(self) -> None:
        """Every generation encodes text (the empty prompt too): without T5 it cannot run."""
        if self.text_encoder is None:
            raise ModelLoadError(
                "this official model has no T5 text encoder; convert it with --t5 DIR"
            )

    def check_duration(self, duration: float | None) -> None:
        """The official network generates a fixed length; any other duration is a user error."""
        if duration is not None and not self.config.accepts_duration(duration):
            raise AudioXError(
                f"the official AudioX-Turbo model generates exactly {self.config.duration:.2f} s "
                f"({self.config.latent_frames} latent frames); got duration {duration:g} s"
            )

    @torch.no_grad()
    def sync_features(self, frames: Tensor, segment_batch: int = 32) -> Tensor:
        """Synchformer features (B, sync_tokens, cond_dim) in the model dtype from frames
        (T,3,H,W) or (B,T,3,H,W) in 0…255 at the extractor's fps (25), on the model device."""
        if self.synchformer is None:
            raise ModelLoadError(NO_SYNCHFORMER)
        sync = self.config.synchformer
        assert sync is not None
        if frames.ndim == 4:
            frames = frames.unsqueeze(0)
        if frames.ndim != 5:
            raise AudioXError(
                f"sync frames must be (T, 3, H, W) or (B, T, 3, H, W), got {tuple(frames.shape)}"
            )
        video = torch.stack([normalize_sync_frames(f.to(self.device), sync) for f in frames])
        return self.synchformer.extract(video, segment_batch)

    def condition(
        self,
        prompts: list[str],
        video_frames: Tensor | None,
        sync_features: Tensor | None,
        audio: Tensor | None,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Conditioners (video, text, audio — the official RNG order) + MAF -> (B,384,D)."""
        self.require_text_encoder()
        c, b, device = self.config, len(prompts), self.device
        size = c.clip_image_size
        if video_frames is None:
            frames = torch.zeros(b, c.video_frames, 3, size, size, device=device)
        else:
            frames = _as_batch(video_frames, 4, b, "video frames")
            frames = torch.stack([prepare_clip_frames(f, c.video_frames, size) for f in frames])
        if sync_features is None:
            sync = torch.zeros(b, c.sync_tokens, c.cond_dim, device=device)
        else:
            sync = _as_batch(sync_features, 2, b, "sync features")
            if tuple(sync.shape[1:]) != (c.sync_tokens, c.cond_dim):
                raise AudioXError(
                    f"sync features must be ({c.sync_tokens}, {c.cond_dim}) per item, "
                    f"got {tuple(sync.shape[1:])}"
                )
        video = self.video(frames.to(device), sync.to(device, self.dtype))
        text = self.text_encoder(prompts)[0].to(device, self.dtype)
        if audio is None:
            wav = torch.zeros(b, c.codec.audio_channels, c.prompt_samples, device=device)
        else:
            wav = fit_prompt(_as_batch(audio, 2, b, "audio prompt").float(), c.prompt_samples)
        audio_tokens = self.audio_prompt(wav.to(device), generator, silent=audio is None)
        return self.fusion(text, video.to(self.dtype), audio_tokens)

    @torch.no_grad()
    def generate(
        self,
        text: str | Sequence[str] | None = None,
        video_frames: Tensor | None = None,
        sync_features: Tensor | None = None,
        audio: Tensor | None = None,
        duration: float | None = None,
        steps: int | None = None,
        cfg: float | None = None,
        seed: int = 0,
        num_outputs: int = 1,
        callback: ProgressCallback | None = None,
        sampler: str = "dmd",
        scale_phi: float = 0.0,
        peak_normalize: bool = True,
    ) -> tuple[Tensor, int]:
        """Prompts -> (waveforms (B,C,S) float32 on CPU, sample_rate); B = prompts·num_outputs.

        video_frames: (T,3,H,W) or (B,T,3,H,W) in 0…255 at 5 fps (None: the learned empty
        feature); sync_features: (240,W) or (B,240,W) Synchformer tokens (None: zeros); audio:
        (C,N) or (B,C,N) at the model's sample rate (None: silence). `sampler` "dmd" is the
        official 4-step student sampler, "euler" the teacher-style Euler sampler with CFG.
        Randomness comes from one generator on the model device seeded with `seed`, drawn in the
        official order (initial noise, prompt mask span, prompt VAE noise, re-noising).
        """
        self.check_duration(duration)
        if sampler not in SAMPLERS:
            raise AudioXError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if num_outputs < 1:
            raise AudioXError(f"num_outputs must be >= 1, got {num_outputs}")
        c = self.config
        steps = c.steps if steps is None else steps
        cfg = c.cfg if cfg is None else cfg
        if sampler == "dmd" and cfg != 1.0:
            raise AudioXError(
                f"the official 4-step DMD sampler runs without guidance (cfg 1), got cfg {cfg:g}; "
                "use the 'euler' sampler for classifier-free guidance"
            )
        texts = [text] if text is None or isinstance(text, str) else list(text)
        prompts = [t or "" for t in texts for _ in range(num_outputs)]
        generator = torch.Generator(self.device).manual_seed(seed)
        noise = torch.randn(
            (len(prompts), c.codec.latent_dim, c.latent_frames),
            generator=generator,
            device=self.device,
        ).to(self.dtype)
        cond = self.condition(prompts, video_frames, sync_features, audio, generator)
        denoiser = self.graphed if self.graphed is not None and noise.is_cuda else self.denoiser
        try:
            settings = SamplerSettings("student" if sampler == "dmd" else "euler", steps, cfg)
        except ValueError as e:
            raise AudioXError(str(e)) from None
        latents = sample_official(denoiser, noise, cond, settings, generator, scale_phi, callback)
        wav = self.codec.decode(latents.float())
        if duration is not None:
            wav = wav[..., : round(duration * c.codec.sample_rate)]
        if peak_normalize:
            peak = wav.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)
            wav = (wav / peak).clamp(-1, 1)
        return wav.cpu(), c.codec.sample_rate


def official_variant(config_json: str | os.PathLike[str]) -> bool:
    """True if a model dir's config.json declares the official variant."""
    import json

    try:
        return json.loads(Path(config_json).read_text()).get("variant") == VARIANT
    except (OSError, ValueError, AttributeError):
        return False
