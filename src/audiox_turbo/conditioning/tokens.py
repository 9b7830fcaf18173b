"""The common output of every conditioner."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ModalityTokens:
    """Tokens of one modality for a batch.

    tokens: (batch, tokens, dim); mask: (batch, tokens) bool, True = real token;
    present: (batch,) bool, False where the modality was not given (tokens are then the null).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    present: torch.Tensor

    def __post_init__(self) -> None:
        b, n = self.tokens.shape[:2]
        if self.mask.shape != (b, n) or self.mask.dtype != torch.bool:
            got = f"{self.mask.dtype} {tuple(self.mask.shape)}"
            raise ValueError(f"mask must be bool {(b, n)}, got {got}")
        if self.present.shape != (b,) or self.present.dtype != torch.bool:
            raise ValueError(f"present must be bool {(b,)}, got {tuple(self.present.shape)}")

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ModalityTokens:
        """Move to a device (and floating dtype for the tokens)."""
        return ModalityTokens(
            self.tokens.to(device=device, dtype=dtype or self.tokens.dtype),
            self.mask.to(device),
            self.present.to(device),
        )

    def pooled(self) -> torch.Tensor:
        """Masked mean over tokens: (batch, dim); zero where a sample has no valid token."""
        m = self.mask.to(self.tokens.dtype).unsqueeze(-1)
        return (self.tokens * m).sum(1) / m.sum(1).clamp_min(1.0)

    def replace_samples(
        self,
        index: torch.Tensor,
        tokens: torch.Tensor,
        mask: torch.Tensor | None,
        present: torch.Tensor,
    ) -> ModalityTokens:
        """A copy whose samples `index` get `tokens` (len(index), N, dim) and, when given,
        `mask` (len(index), N); `present` (B,) becomes the presence flags."""
        new_mask = self.mask if mask is None else self.mask.index_copy(0, index, mask)
        return ModalityTokens(self.tokens.index_copy(0, index, tokens), new_mask, present)

    @staticmethod
    def cat_batch(items: list[ModalityTokens]) -> ModalityTokens:
        """Concatenate along the batch; token counts must match."""
        return ModalityTokens(
            torch.cat([i.tokens for i in items]),
            torch.cat([i.mask for i in items]),
            torch.cat([i.present for i in items]),
        )
