"""Diffusion discriminator: a small head on intermediate features of the fake-score network.

Real and student samples are noised to small t (< gan_max_t), passed through the fake-score
network with `return_features=True`, and the head turns the chosen layers' token features
(B, tokens, dim) into one logit per sample. Losses follow DMD2 (softplus) or hinge.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.distill.dmd import FeatureFn
from audiox_turbo.flow.path import interpolate

GAN_LOSSES = ("hinge", "nonsaturating")


class FeatureBranch(nn.Module):
    """One layer's features (B, tokens, dim) -> logit (B,): norm, two masked 1-D convs, mean.

    `kernel_size` (odd) spans neighbouring tokens; 1 makes the convs per-token linear maps,
    the cheap choice for single-token features (a wider kernel only sees zero padding there).
    """

    def __init__(self, feature_dim: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        padding = kernel_size // 2
        self.norm = nn.LayerNorm(feature_dim)
        self.conv1 = nn.Conv1d(feature_dim, hidden, kernel_size, padding=padding)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size, padding=padding)
        self.out = nn.Linear(hidden, 1)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> Tensor:
        """features (B, N, D), mask (B, N) bool (True = real token) -> (B,).

        Padded tokens are zeroed before each conv, so their content never reaches the logit.
        """
        keep = (
            torch.ones_like(features[..., :1]) if mask is None else mask.to(features).unsqueeze(-1)
        )
        keep = keep.transpose(1, 2)
        h = self.norm(features).transpose(1, 2) * keep
        h = F.silu(self.conv1(h)) * keep
        h = F.silu(self.conv2(h)) * keep
        pooled = h.sum(2) / keep.sum(2).clamp_min(1.0)
        return self.out(pooled).squeeze(-1)


class DiscriminatorHead(nn.Module):
    """Logit per sample (B,) from the feature list of the fake-score network.

    `layers` indexes that list (Python indexing, -1 = last block); the logits of the chosen
    layers are averaged. `kernel_size` is the token span of each branch's convs (see
    `FeatureBranch`).
    """

    def __init__(
        self,
        feature_dim: int,
        layers: Sequence[int] = (-1,),
        hidden: int = 128,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("the discriminator needs at least one feature layer")
        self.layers = tuple(layers)
        self.branches = nn.ModuleList(
            FeatureBranch(feature_dim, hidden, kernel_size) for _ in self.layers
        )

    def forward(self, features: Sequence[Tensor], mask: Tensor | None = None) -> Tensor:
        """features: list of (B, N, D) per network block; mask (B, N) -> logits (B,)."""
        n = len(features)
        bad = [i for i in self.layers if not -n <= i < n]
        if bad:
            raise ValueError(f"discriminator layers {bad} out of range for {n} feature maps")
        logits = [b(features[i], mask) for b, i in zip(self.branches, self.layers, strict=True)]
        return torch.stack(logits).mean(0)


def sample_gan_timesteps(
    n: int,
    max_t: float = 0.2,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """(n,) small noise levels U(0, max_t) at which the discriminator sees its inputs."""
    return max_t * torch.rand(n, generator=generator, device=device)


def discriminator_logits(
    features_fn: FeatureFn,
    head: DiscriminatorHead,
    x0: Tensor,
    t: Tensor,
    eps: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    """Noise x0 (B, ...) to x_t at t (B,), run the fake-score network, return head logits (B,)."""
    _, features = features_fn(interpolate(x0, eps, t), t)
    return head(features, mask)


def _check_kind(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; expected one of {GAN_LOSSES}")


def gan_generator_loss(logits_fake: Tensor, kind: str = "hinge") -> Tensor:
    """Generator term over logits of any shape: hinge −mean D(fake); nonsaturating mean
    softplus(−D(fake)). The one definition: the codec's multi-scale GAN sums it per scale."""
    _check_kind(kind)
    if kind == "hinge":
        return -logits_fake.mean()
    return F.softplus(-logits_fake).mean()


def gan_discriminator_loss(logits_real: Tensor, logits_fake: Tensor, kind: str = "hinge") -> Tensor:
    """Critic term over logits of any shape: hinge mean relu(1 − D(real)) + mean relu(1 + D(fake));
    nonsaturating mean softplus(−D(real)) + mean softplus(D(fake))."""
    _check_kind(kind)
    if kind == "hinge":
        return F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean()
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()
