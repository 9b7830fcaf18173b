"""PaSST-S (Koutini et al. 2022) in the layout of `passt-s-f128-p16-s10-ap.476-swa.pt`
(hear21passt `passt_s_swa_p16_128_ap476`): 128-band log mel at 32 kHz, 16×16 patches with
stride 10, separate frequency/time positional embeddings, class + distillation tokens,
12 ViT blocks of width 768, 527-class head. Inputs longer than 10 s are cut into 10 s windows.

Key names: `patch_embed.proj`, `cls_token`, `dist_token`, `new_pos_embed (1, 2, 768)`,
`freq_new_pos_embed (1, 768, 12, 1)`, `time_new_pos_embed (1, 768, 1, 99)`,
`blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`, `norm`, `head.0` (LayerNorm),
`head.1` (Linear), `head_dist`. A hear21passt wrapper's `net.` prefix is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.eval.embedders import (
    ClassActivation,
    EmbeddingKind,
    WaveformEmbedder,
    load_weights,
    read_state_dict,
)
from audiox_turbo.eval.features import PasstFrontEnd, Waveforms

PASST_FILE = "passt-s-f128-p16-s10-ap.476-swa.pt (PaSST / hear21passt)"


@dataclass(frozen=True)
class PasstConfig:
    """Front end, patching and transformer sizes (published defaults)."""

    sample_rate: int = 32000
    n_mels: int = 128
    hop: int = 320
    patch: int = 16
    stride: int = 10
    max_frames: int = 998
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    num_classes: int = 527
    window_seconds: float = 10.0

    @property
    def grid(self) -> tuple[int, int]:
        """Positional grid (frequency patches, time patches) = (12, 99) for the defaults."""
        return self.n_mels // self.stride, self.max_frames // self.stride


class PatchEmbed(nn.Module):
    """`(B, 1, n_mels, T)` → `(B, dim, F', T')` by a strided convolution."""

    def __init__(self, config: PasstConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, config.embed_dim, config.patch, stride=config.stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, N, dim)` → `(B, N, dim)`."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Linear → GELU → Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm ViT block (LayerNorm eps 1e-6)."""

    def __init__(self, config: PasstConfig) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, config.num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Passt(nn.Module):
    """Normalised log mel `(B, 1, n_mels, T)` → (embedding `(B, dim)`, logits `(B, classes)`).

    The embedding is the mean of the normed class and distillation tokens; the logits are
    `head(embedding)`. `head_dist` is part of the published weights but, as in the reference
    forward pass, not used at inference.
    """

    def __init__(self, config: PasstConfig = PasstConfig()) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        freq, time = config.grid
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, dim, freq, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, dim, 1, time))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, config.num_classes))
        self.head_dist = nn.Linear(dim, config.num_classes)
        for p in (self.cls_token, self.dist_token, self.new_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        nn.init.trunc_normal_(self.freq_new_pos_embed, std=0.02)
        nn.init.trunc_normal_(self.time_new_pos_embed, std=0.02)

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        x = self.patch_embed(mel)
        time = x.shape[-1]
        if time > self.time_new_pos_embed.shape[-1]:
            raise ValueError(
                f"{time} time patches exceed the {self.time_new_pos_embed.shape[-1]} positions"
            )
        x = x + self.time_new_pos_embed[..., :time] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)
        b = x.shape[0]
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:]
        x = torch.cat([cls, dist, x], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        embedding = (x[:, 0] + x[:, 1]) / 2
        return embedding, self.head(embedding)


class PasstEmbedder(WaveformEmbedder):
    """Clip embedder and AudioSet tagger at 32 kHz: `(B, C, S)` → `(B, 768)`, logits
    `(B, 527)`. Clips longer than `window_seconds` are cut into windows (the last one aligned
    to the clip's end) whose embeddings and logits are averaged."""

    name = "passt"
    kind: EmbeddingKind = "clip"
    activation: ClassActivation = "sigmoid"
    batch_size = 4

    def __init__(self, network: Passt, device: str = "cpu") -> None:
        config = network.config
        self.device = torch.device(device)
        self.front_end = PasstFrontEnd(config.sample_rate, config.n_mels, hop=config.hop)
        self.front_end = self.front_end.to(self.device)
        self.network = network.to(self.device).eval()
        self.sample_rate = config.sample_rate
        self.dim = config.embed_dim
        self.num_classes = config.num_classes
        self.window = round(config.window_seconds * config.sample_rate)
        self.min_samples = (config.patch - 1) * config.hop + 1

    def _windows(self, wave: Tensor) -> Tensor:
        """`(B, S)` → `(B, windows, min(S, window))`; short clips are zero-padded."""
        if wave.shape[-1] < self.min_samples:
            wave = F.pad(wave, (0, self.min_samples - wave.shape[-1]))
        length = wave.shape[-1]
        if length <= self.window:
            return wave[:, None]
        count = math.ceil(length / self.window)
        starts = [min(i * self.window, length - self.window) for i in range(count)]
        return torch.stack([wave[:, s : s + self.window] for s in starts], dim=1)

    def _forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        windows = self._windows(wave)
        b, w, s = windows.shape
        mel = self.front_end(windows.reshape(b * w, s))
        embedding, logits = self.network(mel[:, None])
        return embedding.reshape(b, w, -1).mean(1), logits.reshape(b, w, -1).mean(1)

    def classify(self, waveforms: Waveforms, sr: int) -> Tensor:
        """AudioSet logits `(B, 527)` (multi-label: probabilities are their sigmoids)."""
        return self._outputs(waveforms, sr)[1]

    def embed_and_classify(self, waveforms: Waveforms, sr: int) -> tuple[Tensor, Tensor]:
        """Embeddings `(B, 768)` and logits `(B, 527)` from one forward pass."""
        embedding, logits = self._outputs(waveforms, sr)
        return embedding, logits


def load_passt(
    checkpoint: str | Path | None, device: str = "cpu", config: PasstConfig = PasstConfig()
) -> PasstEmbedder:
    """PaSST from its released state dict (bare, nested, or a hear21passt wrapper's `net.*`)."""
    state = read_state_dict(checkpoint, PASST_FILE)
    if any(k.startswith("net.") for k in state):
        state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    network = Passt(config)
    load_weights(network, state, checkpoint)
    return PasstEmbedder(network, device=device)
