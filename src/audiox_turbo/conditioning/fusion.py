"""Multimodal Adaptive Fusion (MAF): gated modality streams -> shared experts -> back to streams.

1. Pool each stream (masked mean) and compute one sigmoid gate per modality from the pooled
   features of the PRESENT modalities (absent ones are zeroed in the gate input and get gate 0).
2. One shared set of `experts` learned tokens (shared by all modalities) cross-attends to the
   concatenation of the gated streams (masked: padding and absent modalities are invisible),
   then a small fusion transformer (`layers`) runs over the expert tokens.
3. Each stream gets a gated residual: cross-attention from its tokens to the fused experts,
   scaled by a per-channel output gate initialised to 0 (at init the streams pass unchanged).
4. pooled (B, dim) = projection of the mean fused expert + sum of gated pooled modalities.
"""

from __future__ import annotations

import torch
from torch import nn

from audiox_turbo.conditioning.layers import Attention, FeedForward, Transformer
from audiox_turbo.conditioning.tokens import ModalityTokens

DEFAULT_MODALITIES = ("text", "video", "audio")


class StreamInjection(nn.Module):
    """Zero-initialised gated cross-attention from a stream (B, N, dim) to experts (B, E, dim)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, stream: ModalityTokens, experts: torch.Tensor) -> ModalityTokens:
        """Stream tokens + gate * attn(stream, experts) on its valid tokens; mask unchanged."""
        expert_mask = torch.ones(experts.shape[:2], dtype=torch.bool, device=experts.device)
        update = self.attn(self.norm(stream.tokens), experts, expert_mask)
        valid = stream.mask.unsqueeze(-1).to(update.dtype)
        return ModalityTokens(
            stream.tokens + self.gate * update * valid, stream.mask, stream.present
        )


class MultimodalAdaptiveFusion(nn.Module):
    """MAF: streams {name: ModalityTokens (B, N_m, dim)} -> same-shaped streams, pooled (B, dim)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        experts: int,
        layers: int,
        modalities: tuple[str, ...] = DEFAULT_MODALITIES,
    ) -> None:
        super().__init__()
        self.modalities = modalities
        count = len(modalities)
        self.pool_norm = nn.LayerNorm(dim)
        self.gate_mlp = nn.Sequential(
            nn.Linear(count * dim + count, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, count)
        )
        self.modality_embed = nn.Parameter(torch.randn(count, dim) * 0.02)
        self.experts = nn.Parameter(torch.randn(experts, dim) * 0.02)
        self.expert_norm = nn.LayerNorm(dim)
        self.stream_norm = nn.LayerNorm(dim)
        self.gather = Attention(dim, heads)
        self.gather_mlp_norm = nn.LayerNorm(dim)
        self.gather_mlp = FeedForward(dim)
        self.fusion = Transformer(dim, heads, layers)
        self.inject = nn.ModuleDict({name: StreamInjection(dim, heads) for name in modalities})
        self.pool_experts = nn.Linear(dim, dim)
        self.pool_modalities = nn.ModuleDict({name: nn.Linear(dim, dim) for name in modalities})

    def _check(self, streams: dict[str, ModalityTokens]) -> None:
        unknown = sorted(set(streams) - set(self.modalities))
        if unknown or not streams:
            raise ValueError(f"streams must be a non-empty subset of {self.modalities}: {unknown}")

    def pooled_inputs(
        self, streams: dict[str, ModalityTokens]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised pooled features (B, M, dim), zero for absent, and presence (B, M) bool."""
        self._check(streams)
        first = next(iter(streams.values()))
        b, dim = first.batch_size, first.tokens.shape[-1]
        pooled = first.tokens.new_zeros(b, len(self.modalities), dim)
        present = torch.zeros(b, len(self.modalities), dtype=torch.bool, device=first.tokens.device)
        for i, name in enumerate(self.modalities):
            if name in streams:
                stream = streams[name]
                present[:, i] = stream.present
                pooled[:, i] = self.pool_norm(stream.pooled()) * stream.present[:, None]
        return pooled, present

    def gates(self, streams: dict[str, ModalityTokens]) -> torch.Tensor:
        """Per-modality gates (B, M) in [0, 1], in `self.modalities` order; 0 for absent ones."""
        pooled, present = self.pooled_inputs(streams)
        return self._gates(pooled, present)

    def _gates(self, pooled: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        flags = present.to(pooled.dtype)
        logits = self.gate_mlp(torch.cat([pooled.flatten(1), flags], dim=1))
        return torch.sigmoid(logits) * flags

    def forward(
        self, streams: dict[str, ModalityTokens]
    ) -> tuple[dict[str, ModalityTokens], torch.Tensor]:
        """Streams {name: (B, N_m, dim)} -> updated streams (same shapes/masks), pooled (B, dim)."""
        pooled, present = self.pooled_inputs(streams)
        gates = self._gates(pooled, present)
        keys, key_masks = [], []
        for i, name in enumerate(self.modalities):
            if name in streams:
                stream = streams[name]
                normed = self.stream_norm(stream.tokens) + self.modality_embed[i]
                keys.append(normed * gates[:, i, None, None])
                key_masks.append(stream.mask & stream.present[:, None])
        context = torch.cat(keys, dim=1)
        b = pooled.shape[0]
        experts = self.experts.unsqueeze(0).expand(b, -1, -1).to(pooled.dtype)
        experts = experts + self.gather(self.expert_norm(experts), context, torch.cat(key_masks, 1))
        experts = experts + self.gather_mlp(self.gather_mlp_norm(experts))
        experts = self.fusion(
            experts, torch.ones(experts.shape[:2], dtype=torch.bool, device=experts.device)
        )
        out = {name: self.inject[name](stream, experts) for name, stream in streams.items()}
        global_condition = self.pool_experts(experts.mean(dim=1))
        for i, name in enumerate(self.modalities):
            if name in streams:
                projected = self.pool_modalities[name](pooled[:, i])
                global_condition = global_condition + gates[:, i, None] * projected
        return out, global_condition
