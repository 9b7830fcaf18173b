"""VGGish (Hershey et al. 2017) in the torchvggish checkpoint layout: 0.96 s log-mel patches at
16 kHz → one 128-d embedding per patch (the frame embeddings used for FAD).

Key names follow harritaylor/torchvggish (`vggish-10086976.pth`): `features.{0,3,6,8,11,13}`
convolutions, `embeddings.{0,2,4}` linear layers; the optional PCA file
(`vggish_pca_params-970ea276.pth`) holds `pca_eigen_vectors (128, 128)` and `pca_means (128,)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from audiox_turbo.errors import ModelLoadError
from audiox_turbo.eval.embedders import (
    EmbeddingKind,
    WaveformEmbedder,
    load_weights,
    read_state_dict,
)
from audiox_turbo.eval.features import VGGishFrontEnd

VGGISH_FILE = "vggish-10086976.pth (torchvggish)"
PCA_FILE = "vggish_pca_params-970ea276.pth (torchvggish)"


@dataclass(frozen=True)
class VGGishConfig:
    """Channel widths of the four conv stages and the fully connected sizes (published defaults)."""

    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    hidden_dim: int = 4096
    embedding_dim: int = 128


class VGGishNetwork(nn.Module):
    """Log-mel patches `(N, 1, 96, 64)` → embeddings `(N, embedding_dim)` (final ReLU as in
    torchvggish)."""

    def __init__(self, config: VGGishConfig = VGGishConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = 1
        for stage, width in enumerate(config.widths):
            for _ in range(1 if stage < 2 else 2):
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(config.widths[-1] * 6 * 4, config.hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden_dim, config.hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden_dim, config.embedding_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, patches: Tensor) -> Tensor:
        """`(N, 1, 96, 64)` → `(N, embedding_dim)`; flattened in (time, mel, channel) order."""
        x = self.features(patches)
        return self.embeddings(x.permute(0, 2, 3, 1).flatten(1))


class VGGishPCA(nn.Module):
    """AudioSet release post-processing: PCA whitening, clip to [−2, 2], 8-bit quantisation
    (values 0…255 as floats)."""

    def __init__(self, eigen_vectors: Tensor, means: Tensor) -> None:
        super().__init__()
        self.register_buffer("matrix", eigen_vectors.float())
        self.register_buffer("means", means.float().reshape(-1))

    def forward(self, emb: Tensor) -> Tensor:
        """`(N, 128)` → `(N, 128)` quantised PCA embeddings."""
        projected = (emb - self.means) @ self.matrix.T
        return torch.round((projected.clamp(-2.0, 2.0) + 2.0) * (255.0 / 4.0))


class VGGishEmbedder(WaveformEmbedder):
    """Frame embedder: `(B, C, S)` at any rate → `(B, patches, 128)`, ≈1.04 patches per second
    (1 + ⌊(S₁₆ − 15600)/15360⌋ patches for S₁₆ samples at 16 kHz)."""

    name = "vggish"
    sample_rate = 16000
    kind: EmbeddingKind = "frames"

    def __init__(
        self, network: VGGishNetwork, device: str = "cpu", pca: VGGishPCA | None = None
    ) -> None:
        self.device = torch.device(device)
        self.front_end = VGGishFrontEnd().to(self.device)
        self.network = network.to(self.device).eval()
        self.pca = pca.to(self.device) if pca is not None else None
        self.dim = network.config.embedding_dim

    def _forward(self, wave: Tensor) -> tuple[Tensor]:
        patches = self.front_end(wave)
        batch, count = patches.shape[:2]
        emb = self.network(patches.reshape(batch * count, 1, *patches.shape[2:]))
        if self.pca is not None:
            emb = self.pca(emb)
        return (emb.reshape(batch, count, -1),)


def _pca_from(state: dict[str, Tensor], path: str | Path) -> VGGishPCA:
    for matrix_key, means_key in (
        ("pca_eigen_vectors", "pca_means"),
        ("pproc.pca_matrix", "pproc.pca_means"),
    ):
        if matrix_key in state and means_key in state:
            return VGGishPCA(state[matrix_key], state[means_key])
    raise ModelLoadError(f"{path}: no VGGish PCA parameters (pca_eigen_vectors, pca_means)")


def load_vggish(
    checkpoint: str | Path | None,
    device: str = "cpu",
    config: VGGishConfig = VGGishConfig(),
    pca_checkpoint: str | Path | None = None,
    postprocess: bool = False,
) -> VGGishEmbedder:
    """VGGish from a torchvggish state dict. Raw embeddings (as FAD uses) unless `postprocess`,
    which applies the PCA stored as `pproc.*` in the checkpoint or given in `pca_checkpoint`."""
    state = read_state_dict(checkpoint, VGGISH_FILE)
    network = VGGishNetwork(config)
    pca = None
    if postprocess:
        pca_state = read_state_dict(pca_checkpoint, PCA_FILE) if pca_checkpoint else state
        pca = _pca_from(pca_state, pca_checkpoint or checkpoint)
    weights = {k: v for k, v in state.items() if not k.startswith("pproc.")}
    load_weights(network, weights, checkpoint)
    return VGGishEmbedder(network, device=device, pca=pca)
