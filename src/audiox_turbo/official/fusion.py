"""The official Multimodal Adaptive Fusion block (MAF_Block, spec §4.2).

Parameter names mirror the released checkpoint below `maf_block.`. The official wrapper passes
(text, video, audio) to a signature named (video, text, audio), so the `_v` gate, norm and first
third of the experts act on text and the `_t` ones on video (§4.1, §12.1); `forward` takes the
modalities in the wrapper's call order and returns [text'; video'; audio'].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiox_turbo.official.config import OfficialConfig

_NORM_EPS = 1e-5


class OfficialFusion(nn.Module):
    """MAF: three (B,T,D) token streams -> refined streams concatenated (B,3T,D)."""

    def __init__(self, config: OfficialConfig) -> None:
        super().__init__()
        d, n = config.cond_dim, config.fusion_experts
        self.unified_experts = nn.Parameter(torch.randn(3 * n, d) * 0.02)
        self.bypass_gate_v = nn.Parameter(torch.tensor(-10.0))
        self.bypass_gate_t = nn.Parameter(torch.tensor(-10.0))
        self.bypass_gate_a = nn.Parameter(torch.tensor(-10.0))
        self.gating_network = nn.Sequential(
            nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 3), nn.Sigmoid()
        )
        self.cross_attn = nn.MultiheadAttention(d, config.fusion_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d, eps=_NORM_EPS)
        layer = nn.TransformerEncoderLayer(
            d,
            config.fusion_heads,
            config.fusion_mlp_ratio * d,
            dropout=0.0,
            activation="gelu",
            layer_norm_eps=_NORM_EPS,
            batch_first=True,
            norm_first=True,
        )
        self.fusion_transformer = nn.TransformerEncoder(
            layer, config.fusion_layers, enable_nested_tensor=False
        )
        self.norm_v2 = nn.LayerNorm(d, eps=_NORM_EPS)
        self.norm_t2 = nn.LayerNorm(d, eps=_NORM_EPS)
        self.norm_a2 = nn.LayerNorm(d, eps=_NORM_EPS)

    def forward(self, text: Tensor, video: Tensor, audio: Tensor) -> Tensor:
        """text, video, audio (B,T,D) -> [text'; video'; audio'] (B,3T,D)."""
        streams = (text, video, audio)
        pooled = torch.cat([s.mean(dim=1) for s in streams], dim=-1)
        gates = self.gating_network(pooled)
        context = torch.cat([s * gates[:, i, None, None] for i, s in enumerate(streams)], dim=1)
        experts = self.unified_experts.expand(text.shape[0], -1, -1)
        info = self.cross_attn(experts, context, context, need_weights=False)[0]
        fused = self.fusion_transformer(self.norm1(experts + info))
        summaries = [chunk.mean(dim=1, keepdim=True) for chunk in fused.chunk(3, dim=1)]
        slots = (
            (self.bypass_gate_v, self.norm_v2),
            (self.bypass_gate_t, self.norm_t2),
            (self.bypass_gate_a, self.norm_a2),
        )
        refined = [
            s + torch.sigmoid(gate) * norm(r)
            for s, r, (gate, norm) in zip(streams, summaries, slots, strict=True)
        ]
        return torch.cat(refined, dim=1)
