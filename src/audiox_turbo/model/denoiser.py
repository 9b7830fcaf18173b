"""The native denoiser: latent + fused conditions -> rectified-flow velocity."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from audiox_turbo.conditioning.beat import BEAT_FEATURES
from audiox_turbo.config import ModelConfig
from audiox_turbo.model.layers import (
    AdaLNModulation,
    TimestepEmbedding,
    modulate,
)
from audiox_turbo.model.mmdit import JointBlock, Stream
from audiox_turbo.rope import rope_angles, rope_frequencies

if TYPE_CHECKING:
    from audiox_turbo.conditioning.conditioner import Conditions


def video_frame_index(
    frames: int,
    latent_rate: float,
    video_frames: int,
    fps: float,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Index of the video frame on screen at each latent frame's centre: (frames,) long."""
    centre = (torch.arange(frames, dtype=torch.float64, device=device) + 0.5) / latent_rate
    return (centre * fps).floor().long().clamp_(0, video_frames - 1)


def attended_length(mask: torch.Tensor) -> int:
    """Tokens up to and including the last position any sample attends to: (B, N) bool -> int."""
    if mask.shape[1] == 0:
        return 0
    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return int((positions * mask.any(0)).max())


class Denoiser(nn.Module):
    """MMDiT over latent, text and video streams with adaLN-Zero modulation.

    forward: x (B, latent_dim, T), t (B,), conditions -> v (B, latent_dim, T). Any T works.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, c = config.denoiser, config.conditioning
        latent_dim, dim = config.codec.latent_dim, d.dim
        if dim % d.heads or (dim // d.heads) % 2:
            raise ValueError(f"denoiser dim {dim} must split into {d.heads} heads of even size")
        self.config = config
        self.latent_rate = config.codec.latent_rate
        self.video_fps = c.video_fps
        self.rope_theta = d.rope_theta
        self.attend_absent = d.attend_absent
        self.head_dim = dim // d.heads
        self.latent_in = nn.Linear(2 * latent_dim + 1, dim)
        self.audio_in = nn.Linear(c.dim, dim)
        self.text_in = nn.Linear(c.dim, dim)
        self.video_in = nn.Linear(c.dim, dim)
        self.time_embed = TimestepEmbedding(dim)
        self.pooled_in = nn.Sequential(nn.Linear(c.dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.sync_in = nn.Linear(c.dim, dim)
        nn.init.zeros_(self.sync_in.weight)
        nn.init.zeros_(self.sync_in.bias)
        self.beat_in = None
        if c.beat_grid:
            self.beat_in = nn.Linear(BEAT_FEATURES, dim)
            nn.init.zeros_(self.beat_in.weight)
            nn.init.zeros_(self.beat_in.bias)
        self.blocks = nn.ModuleList(
            JointBlock(dim, d.heads, 3, d.mlp_ratio, context_pre_only=i == d.depth - 1)
            for i in range(d.depth)
        )
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = AdaLNModulation(dim, 2)
        self.out = nn.Linear(dim, latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def rotary(
        self, latent_frames: int, video_frames: int, text_tokens: int, device: torch.device
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """cos/sin tables per stream: latent frames and video frames share the time axis
        (positions in latent frames); text tokens have no position (identity rotation)."""
        freqs = rope_frequencies(self.head_dim, self.rope_theta, device)
        latent_pos = torch.arange(latent_frames, device=device, dtype=torch.float32)
        video_pos = (
            torch.arange(video_frames, device=device, dtype=torch.float32)
            * self.latent_rate
            / self.video_fps
        )
        text_pos = torch.full((text_tokens,), float("nan"), device=device)
        tables = [rope_angles(p.unsqueeze(0), freqs) for p in (latent_pos, text_pos, video_pos)]
        return [t[0] for t in tables], [t[1] for t in tables]

    def attended(self, cond: Conditions) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(tokens, mask) of the text and video streams (absent ones hidden unless
        `attend_absent`); on the CPU cut after the last token any sample attends to, which
        never changes the result. Elsewhere uncut: reading the masks would sync the host, and
        a CUDA graph cannot."""
        streams = []
        for m in (cond.text, cond.video):
            mask = m.mask if self.attend_absent else m.mask & m.present[:, None]
            n = attended_length(mask) if mask.device.type == "cpu" else mask.shape[1]
            streams.append((m.tokens[:, :n], mask[:, :n]))
        return streams

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: Conditions,
        x_mask: torch.Tensor | None = None,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Velocity (B, latent_dim, T); x_mask (B, T) bool hides padded frames from attention.

        With return_features, also the latent-stream tokens after each block, each (B, T, dim).
        """
        b, _, frames = x.shape
        dtype = self.latent_in.weight.dtype
        if t.dim() == 0:
            t = t.expand(b)
        video = cond.video
        h = self.latent_in(torch.cat([x, cond.prompt], dim=1).transpose(1, 2).to(dtype))
        h = h + self.audio_in(cond.audio.tokens.to(dtype))
        global_c = self.time_embed(t) + self.pooled_in(cond.pooled.to(dtype))
        on_screen = video_frame_index(
            frames, self.latent_rate, video.tokens.shape[1], self.video_fps, x.device
        )
        frame_c = global_c.unsqueeze(1) + self.sync_in(video.tokens[:, on_screen].to(dtype))
        if self.beat_in is not None:
            frame_c = frame_c + self.beat_in(cond.beat.to(dtype))
        (text_tokens, text_mask), (video_tokens, video_mask) = self.attended(cond)
        cos, sin = self.rotary(frames, video_tokens.shape[1], text_tokens.shape[1], x.device)
        latent_mask = (
            torch.ones(b, frames, dtype=torch.bool, device=x.device) if x_mask is None else x_mask
        )
        xs = [h, self.text_in(text_tokens.to(dtype)), self.video_in(video_tokens.to(dtype))]
        conds = [frame_c, global_c, global_c]
        masks = [latent_mask, text_mask, video_mask]
        features = []
        for block in self.blocks:
            xs = block([Stream(*a) for a in zip(xs, conds, cos, sin, masks, strict=True)])
            features.append(xs[0])
        shift, scale = self.final_modulation(frame_c)
        v = self.out(modulate(self.final_norm(xs[0]), shift, scale)).transpose(1, 2).float()
        return (v, features) if return_features else v


NEW_ZERO_MODULES = ("beat_in.",)
"""Zero-initialised modules a config may add to a trained denoiser without changing it."""


def carry_weights(source: Denoiser, config: ModelConfig) -> Denoiser:
    """A denoiser of `config` with `source`'s weights; only modules of `NEW_ZERO_MODULES`
    may be new (they start at zero, so the output is unchanged). ValueError otherwise."""
    target = Denoiser(config).to(next(source.parameters()).dtype)
    have, want = source.state_dict(), target.state_dict()
    missing = [k for k in want if k not in have and not k.startswith(NEW_ZERO_MODULES)]
    unexpected = [k for k in have if k not in want]
    resized = [k for k in have if k in want and have[k].shape != want[k].shape]
    if missing or unexpected or resized:
        raise ValueError(
            f"the trained denoiser does not fit the new architecture: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, resized {resized[:3]}"
        )
    target.load_state_dict(have, strict=False)
    return target
