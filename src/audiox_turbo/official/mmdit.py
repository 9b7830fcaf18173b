"""The official MMDiT denoiser (spec §5); its CFG and rescale (§6.2) are the
project's one guidance path, bound in `official/sampling.py`.

Parameter names mirror the released checkpoint below `model.model.` so conversion is a prefix
rename. Quirks kept on purpose: heads of width 24 (64 heads at 1536), q/k/v interleaved in the
qkv projection, per-token adaLN driven by the conditioning tokens, a constant time-token
cross-attention term, kernel-3 convolutions along the sequence, a fixed 237-row RoPE table.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.official.config import OfficialConfig
from audiox_turbo.rope import apply_rope, rope_angles, rope_frequencies

_NORM_EPS = 1e-5
_RMS_EPS = 1e-6


def rms_normalize(x: Tensor) -> Tensor:
    """Parameter-free RMSNorm over the last axis, in the input dtype: x·rsqrt(mean(x²) + 1e-6)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + _RMS_EPS)


class SequenceConv(nn.Conv1d):
    """Conv1d (kernel k, padding k//2) along the sequence: (B,N,Cin) -> (B,N,Cout).

    Computed as one matmul of the unfolded channel-last input with the weight viewed as
    (Cout, Cin·k) — the same sum as the convolution, without layout conversions on GPU.
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool, kernel_size: int = 3) -> None:
        super().__init__(in_dim, out_dim, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        k, pad = self.kernel_size[0], self.padding[0]
        windows = F.pad(x, (0, 0, pad, pad)).unfold(1, k, 1)
        return F.linear(windows.flatten(2), self.weight.flatten(1), self.bias)


class SwiGLUConv(nn.Module):
    """w2(SiLU(w1 x) ⊙ w3 x) with kernel-3 sequence convs, no biases; (B,N,E) -> (B,N,E)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = SequenceConv(dim, hidden, bias=False)
        self.w2 = SequenceConv(hidden, dim, bias=False)
        self.w3 = SequenceConv(dim, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class InterleavedQKV(nn.Module):
    """Linear dim -> 3·dim laid out (head, head_dim, {q,k,v}); (B,N,E) -> 3 × (B,H,N,hd).

    v is made contiguous so fused attention kernels apply (q and k are rebuilt by RoPE).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, self.heads, -1, 3).permute(4, 0, 2, 1, 3)
        return qkv[0], qkv[1], qkv[2].contiguous()


class TimeTokenCrossAttention(nn.Module):
    """Cross-attention of every position to the single time token: (B,1,E) -> (B,1,E).

    One key means softmax weight 1, and the official forward swaps k and v, so the output is
    RMSNorm_head(to_kv.weight[0::2] · τ) (§5.5 step 8); `to_q` and the odd rows never matter.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)

    def forward(self, time_token: Tensor) -> Tensor:
        b = time_token.shape[0]
        values = F.linear(time_token, self.to_kv.weight[0::2])
        return rms_normalize(values.view(b, 1, self.heads, -1)).view(b, 1, -1)


class OfficialMMDiTBlock(nn.Module):
    """One MMDitSingleBlock: h (B,N,E), per-token cond c (B,N,E), τ (B,1,E) -> (B,N,E)."""

    def __init__(self, dim: int, heads: int, ffn_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_NORM_EPS, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, eps=_NORM_EPS, elementwise_affine=False)
        self.attn = InterleavedQKV(dim, heads)
        self.cross_attn = TimeTokenCrossAttention(dim, heads)
        self.linear1 = SequenceConv(dim, dim, bias=True)
        self.ffn = SwiGLUConv(dim, ffn_hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, h: Tensor, c: Tensor, time_token: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        q, k, v = self.attn(self.norm1(h) * (1 + scale1) + shift1)
        q = apply_rope(rms_normalize(q), cos, sin)
        k = apply_rope(rms_normalize(k), cos, sin)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        h = h + self.linear1(a) * gate1
        h = h + self.cross_attn(time_token)
        return h + self.ffn(self.norm2(h) * (1 + scale2) + shift2) * gate2


class OfficialTransformer(nn.Module):
    """ContinuousMMDiTTransformer: latents (B,L,C) + temb (B,1,E) + cond (B,384,D) -> (B,L+1,C)."""

    def __init__(self, config: OfficialConfig) -> None:
        super().__init__()
        e, c = config.dit_dim, config.codec.latent_dim
        self.project_in = nn.Linear(c, e, bias=False)
        self.project_out = nn.Linear(e, c, bias=False)
        self.proj_mm_tokens = nn.Linear(config.cond_dim, e)
        self.proj_mm_seq_len = nn.Linear(config.cond_sequence, config.sequence_length)
        self.layers = nn.ModuleList(
            OfficialMMDiTBlock(e, config.dit_heads, config.ffn_hidden)
            for _ in range(config.dit_depth)
        )
        self.head_dim = config.head_dim
        self.rope_theta = config.rope_theta

    def rope_table(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos, sin (1, length, head_dim/2) float32 for positions 0…length−1 (time token = 0)."""
        freqs = rope_frequencies(self.head_dim, self.rope_theta, device)
        cos, sin = rope_angles(torch.arange(length, device=device, dtype=torch.float32), freqs)
        return cos[None], sin[None]

    def forward(self, x: Tensor, time_token: Tensor, cond: Tensor) -> Tensor:
        h = torch.cat([time_token, self.project_in(x)], dim=1)
        c = self.proj_mm_seq_len(self.proj_mm_tokens(cond).transpose(1, 2)).transpose(1, 2)
        cos, sin = self.rope_table(h.shape[1], h.device)
        for layer in self.layers:
            h = layer(h, c, time_token, cos, sin)
        return self.project_out(h)


class OfficialMMDiT(nn.Module):
    """MMDiffusionTransformer: x_t (B,C,L), t (B,), cond (B,384,D) -> velocity (B,C,L).

    L must equal `config.latent_frames` (the official RoPE table and adaLN rows are fixed).
    """

    def __init__(self, config: OfficialConfig) -> None:
        super().__init__()
        e, d, c = config.dit_dim, config.cond_dim, config.codec.latent_dim
        self.latent_frames = config.latent_frames
        self.timestep_features = nn.Linear(1, config.timestep_features, bias=False)
        self.to_timestep_embed = nn.Sequential(
            nn.Linear(2 * config.timestep_features, e), nn.SiLU(), nn.Linear(e, e)
        )
        self.to_cond_embed = nn.Sequential(
            nn.Linear(d, d, bias=False), nn.SiLU(), nn.Linear(d, d, bias=False)
        )
        self.to_global_embed = nn.Sequential(
            nn.Linear(d, e, bias=False), nn.SiLU(), nn.Linear(e, e, bias=False)
        )
        self.transformer = OfficialTransformer(config)
        self.preprocess_conv = nn.Conv1d(c, c, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(c, c, 1, bias=False)

    def time_embedding(self, t: Tensor) -> Tensor:
        """t (B,) in [0,1] -> (B,E): MLP of [cos 2πtW, sin 2πtW] (cos first, t not scaled)."""
        f = 2 * math.pi * t[:, None].to(self.timestep_features.weight.dtype)
        f = f @ self.timestep_features.weight.T
        return self.to_timestep_embed(torch.cat([f.cos(), f.sin()], dim=-1))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """One conditional branch: x (B,C,L), t (B,), cond (B,384,D) -> (B,C,L) (CFG:
        `official.sampling.official_velocity`)."""
        if x.shape[-1] != self.latent_frames:
            raise ValueError(
                f"the official MMDiT takes exactly {self.latent_frames} latent frames, "
                f"got {x.shape[-1]}"
            )
        time_token = self.time_embedding(t)[:, None]
        x = self.preprocess_conv(x) + x
        out = self.transformer(x.transpose(1, 2), time_token, cond)[:, 1:].transpose(1, 2)
        return self.postprocess_conv(out) + out
