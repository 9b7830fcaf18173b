"""The official text conditioner: T5 encoder from a local Hugging Face dir (spec §3.2).

T5 is not part of any AudioX checkpoint; it is loaded from a directory holding a
`T5EncoderModel` and its tokenizer. Padded positions of the output are set exactly to zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from audiox_turbo.errors import ModelLoadError


class OfficialTextConditioner:
    """Prompts -> T5 last_hidden_state (B, max_tokens, D) float32, zero at padding."""

    def __init__(self, encoder: Any, tokenizer: Any, max_tokens: int) -> None:
        self.encoder = encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    @classmethod
    def from_dir(
        cls, path: str | Path, max_tokens: int, device: torch.device | str = "cpu"
    ) -> OfficialTextConditioner:
        """Load from a local HF dir; fp16 on CUDA as the official, float32 elsewhere."""
        from transformers import AutoTokenizer, T5EncoderModel

        path = Path(path)
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path}: not a T5 model directory (no config.json)")
        device = torch.device(device)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            encoder = T5EncoderModel.from_pretrained(str(path), torch_dtype=dtype)
        except (OSError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelLoadError(f"{path}: cannot load the T5 encoder ({first})") from None
        return cls(encoder.to(device), tokenizer, max_tokens)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def __call__(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """prompts (B) -> tokens (B,max_tokens,D) float32 and mask (B,max_tokens) bool."""
        batch = self.tokenizer(
            prompts,
            truncation=True,
            max_length=self.max_tokens,
            padding="max_length",
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device).bool()
        with torch.no_grad():
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return hidden.float() * mask[..., None], mask
