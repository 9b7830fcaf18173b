"""Toy DMD distillation through the product's own tasks and training loop: a 2-D mixture.

Eight well-separated modes on a circle; the condition is one of four classes (named by a
caption, "class c"), each owning two opposite modes (so a conditional sample is still bimodal
and mode collapse is observable); an absent caption is the learned null for CFG. The networks
are toys behind the product's interfaces: `ToyConditioner` turns captions into `Conditions`
(the class embedding as `pooled`), `ToyDenoiser` is an MLP per latent frame with the
denoiser's call (x (B, 2, 1), t, cond, x_mask, return_features). The teacher is trained by
`TeacherTask` and distilled by `DistillTask`, both run by the `Trainer`; the student is read
back from the exported model folder and sampled by `sample_latents`, the path of `generate`.

Quality is the energy distance to the true mixture, with the mixture's side in closed form
(so only the model's own samples add estimator noise), and per-class mode coverage: the
share of each class's samples on each of its two modes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from audiox_turbo.conditioning.beat import BEAT_FEATURES
from audiox_turbo.conditioning.conditioner import Conditions, condition_dropout
from audiox_turbo.conditioning.inputs import ConditionInputs
from audiox_turbo.conditioning.tokens import ModalityTokens
from audiox_turbo.config import (
    CodecConfig,
    ConditioningConfig,
    DenoiserConfig,
    ModelConfig,
    SamplerDefaults,
    load_config,
)
from audiox_turbo.flow.sampling import SamplerSettings
from audiox_turbo.model.generation import sample_latents
from audiox_turbo.train.run_config import DistillConfig, TeacherTrainingConfig, TrainConfig
from audiox_turbo.train.student import DistillTask
from audiox_turbo.train.teacher import TeacherTask
from audiox_turbo.train.trainer import Trainer
from audiox_turbo.weights import read_safetensors

MODES = 8
CLASSES = 4
NULL = CLASSES
RADIUS = 4.0
SIGMA = 0.25
HIDDEN = 64
COND_DIM = 32
CLASS_NAMES = tuple(f"class {c}" for c in range(CLASSES))
TOY_CONFIG = ModelConfig(
    name="toy",
    codec=CodecConfig(latent_dim=2),
    conditioning=ConditioningConfig(dim=COND_DIM),
    denoiser=DenoiserConfig(dim=HIDDEN, text_dropout=0.15),
    sampler=SamplerDefaults(steps=100, cfg=1.0),
)
DURATION = 1 / TOY_CONFIG.codec.latent_rate
"""Seconds of one latent frame: every toy sample is a one-frame clip."""


# ------------------------------------------------------------------------------ the mixture


def mode_centres() -> Tensor:
    """(MODES, 2) float64 centres on a circle of radius RADIUS; mode m belongs to class m % 4."""
    angles = torch.arange(MODES, dtype=torch.float64) * (2 * math.pi / MODES)
    return RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def sample_mixture(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(x (n, 2) float32, class labels (n,)) from the true mixture, modes uniform."""
    modes = torch.randint(0, MODES, (n,), generator=generator)
    x = mode_centres()[modes] + SIGMA * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.float(), modes % CLASSES


def rice_mean(offset: Tensor, sigma: float) -> Tensor:
    """E|Z| for Z ~ N(μ, σ²·I₂) with |μ| = offset (any shape, float64): the Rice mean.

    σ·√(π/2)·L_{1/2}(−a), a = offset²/(2σ²), L_{1/2}(−a) = e^{−a/2}((1 + a)·I0(a/2) + a·I1(a/2)),
    written with the exponentially scaled Bessel functions i0e, i1e.
    """
    a = offset.double().pow(2) / (2 * sigma**2)
    laguerre = (1 + a) * torch.special.i0e(a / 2) + a * torch.special.i1e(a / 2)
    return sigma * math.sqrt(math.pi / 2) * laguerre


def mean_distance_to_mixture(x: Tensor) -> Tensor:
    """(n,) float64 E_Y|x_i − Y| over Y from the true mixture, exact, for x (n, 2)."""
    return rice_mean(torch.cdist(x.double(), mode_centres()), SIGMA).mean(1)


def mixture_self_distance() -> float:
    """E|Y − Y'| for independent Y, Y' from the true mixture, exact."""
    centres = mode_centres()
    return float(rice_mean(torch.cdist(centres, centres), math.sqrt(2) * SIGMA).mean())


def mean_pairwise_distance(x: Tensor, chunk: int = 2048) -> float:
    """mean_{i≠j}|x_i − x_j| for x (n, d), float64, in row blocks of `chunk` to bound memory."""
    x = x.double()
    total = sum(float(torch.cdist(block, x).sum()) for block in x.split(chunk))
    return total / (len(x) * (len(x) - 1))


def energy_distance_to_mixture(x: Tensor) -> float:
    """Unbiased energy distance between samples x (n, 2) and the true mixture.

    2·mean_i E_Y|x_i − Y| − mean_{i≠j}|x_i − x_j| − E|Y − Y'|, the mixture terms exact.
    """
    cross_term = float(mean_distance_to_mixture(x).mean())
    return 2 * cross_term - mean_pairwise_distance(x) - mixture_self_distance()


def class_mode_shares(x: Tensor, labels: Tensor) -> Tensor:
    """(CLASSES, 2) share of each class's samples x (n, 2) nearest to each of its two modes
    (modes c and c + CLASSES); a row sums to the class's on-class share, ideally 0.5 + 0.5."""
    nearest = torch.cdist(x.double(), mode_centres()).argmin(1)
    own_modes = torch.arange(CLASSES)[:, None] + torch.tensor([0, CLASSES])
    return torch.stack(
        [(nearest[labels == c, None] == own_modes[c]).double().mean(0) for c in range(CLASSES)]
    )


# ------------------------------------------------------------------------------ the networks


def toy_conditions(pooled: Tensor, frames: int) -> Conditions:
    """`Conditions` carrying only `pooled` (B, COND_DIM): the other streams empty (one masked
    token each) and no audio prompt."""
    b, device = pooled.shape[0], pooled.device

    def absent() -> ModalityTokens:
        return ModalityTokens(
            pooled.new_zeros(b, 1, COND_DIM),
            torch.zeros(b, 1, dtype=torch.bool, device=device),
            torch.zeros(b, dtype=torch.bool, device=device),
        )

    prompt = pooled.new_zeros(b, TOY_CONFIG.codec.latent_dim + 1, frames)
    beat = pooled.new_zeros(b, frames, BEAT_FEATURES)
    return Conditions(absent(), absent(), absent(), pooled, prompt, beat)


class ToyConditioner(nn.Module):
    """The `Conditioner` call for captions "class c": a learned embedding per class, the null
    (index NULL) where the caption is absent or dropped (train time, text_dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(CLASSES + 1, COND_DIM)

    def forward(
        self,
        inputs: ConditionInputs,
        frames: int,
        duration: float,
        drop: bool = False,
        generator: torch.Generator | None = None,
    ) -> Conditions:
        """Conditions of inputs.batch_size samples; pooled (B, COND_DIM)."""
        captions = inputs.text or [None] * inputs.batch_size
        labels = torch.tensor([NULL if c is None else CLASS_NAMES.index(c) for c in captions])
        if drop:
            probabilities = (TOY_CONFIG.denoiser.text_dropout, 0.0, 0.0)
            keep = condition_dropout(len(labels), probabilities, generator)[0]
            labels = torch.where(keep, labels, NULL)
        return toy_conditions(self.embedding(labels.to(self.embedding.weight.device)), frames)

    def unconditional(self, batch_size: int, frames: int, duration: float) -> Conditions:
        """Every sample null: the CFG unconditional branch."""
        return self(ConditionInputs(batch_size), frames, duration)


class ToyDenoiser(nn.Module):
    """The `Denoiser` call on 2-D latents: an MLP per frame of x, the time and `cond.pooled`."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), 8)))
        self.layers = nn.ModuleList(
            [
                nn.Linear(2 + 16 + COND_DIM, hidden),
                nn.Linear(hidden, hidden),
                nn.Linear(hidden, hidden),
            ]
        )
        self.out = nn.Linear(hidden, 2)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        cond: Conditions,
        x_mask: Tensor | None = None,
        return_features: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Velocity (B, 2, T) for x (B, 2, T) at t (B,); features: one (B, T, hidden) per layer."""
        frames = x.shape[-1]
        angle = t[:, None] * self.freqs
        per_sample = torch.cat([angle.sin(), angle.cos(), cond.pooled.to(x.dtype)], dim=1)
        h = torch.cat([x.transpose(1, 2), per_sample[:, None].expand(-1, frames, -1)], dim=2)
        features = []
        for layer in self.layers:
            h = nn.functional.silu(layer(h))
            features.append(h)
        v = self.out(h).transpose(1, 2)
        return (v, features) if return_features else v


@dataclass
class ToyModel:
    """A trained toy teacher (the `TeacherModel` that `DistillTask` takes); no codec: the
    latents are the points themselves."""

    conditioner: ToyConditioner
    denoiser: ToyDenoiser
    config: ModelConfig = TOY_CONFIG
    codec: nn.Module = field(default_factory=nn.Identity)


# ------------------------------------------------------------------------------ data and runs


class MixtureClips(torch.utils.data.Dataset):
    """n points of the mixture as one-frame latent clips captioned with their class name."""

    def __init__(self, n: int, seed: int) -> None:
        self.x, self.labels = sample_mixture(n, torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.x[i], int(self.labels[i])


def collate_clips(items: list[tuple[Tensor, int]]) -> dict:
    """A batch in the pre-encoded latent format the tasks read: latents (B, 2, 1), masks,
    no audio prompt, captions as `conditions`."""
    x = torch.stack([p for p, _ in items])[:, :, None]
    b = len(items)
    return {
        "latents": x,
        "latent_mask": torch.ones(b, 1, dtype=torch.bool),
        "prompt_mask": torch.zeros(b, 1, dtype=torch.bool),
        "audio_prompt_present": torch.zeros(b, dtype=torch.bool),
        "conditions": ConditionInputs(b, text=[CLASS_NAMES[c] for _, c in items]),
    }


def toy_train_config(steps: int, seed: int, **overrides: object) -> TrainConfig:
    """Trainer settings of the toy runs: batch 512, no weight decay, clipping, warm-up or
    periodic checkpoints; every step logged."""
    base: dict = dict(
        batch_size=512,
        weight_decay=0.0,
        warmup_steps=0,
        grad_clip=0.0,
        max_steps=steps,
        checkpoint_every=0,
        log_every=0,
        sample_every=0,
        num_workers=0,
        ema_warmup=0,
        seed=seed,
    )
    return TrainConfig(**(base | overrides))


def train_teacher(seed: int, steps: int, run: Path, lr: float = 2e-3) -> ToyModel:
    """Flow matching by `TeacherTask` (uniform t, cosine lr, text dropout to the null); the
    raw (not EMA) weights, frozen."""
    torch.manual_seed(seed)
    model = ToyModel(ToyConditioner(), ToyDenoiser())
    cfg = toy_train_config(steps, seed, lr=lr, schedule="cosine", timestep_sampler="uniform")
    task = TeacherTask(
        TOY_CONFIG,
        cfg,
        TeacherTrainingConfig(validation_prompts=()),
        codec=model.codec,
        conditioner=model.conditioner,
        denoiser=model.denoiser,
    )
    data = MixtureClips(steps * cfg.batch_size, seed)
    Trainer(task, cfg, run, data, collate_clips, progress=False, cpu=True).fit()
    model.conditioner.requires_grad_(False).eval()
    model.denoiser.requires_grad_(False).eval()
    return model


def distill_trainer(
    teacher: ToyModel, settings: DistillConfig, steps: int, seed: int, run: Path, batch: int = 512
) -> Trainer:
    """A `Trainer` running `DistillTask` on `teacher` for `steps` steps (constant lr as in the
    product's distillation configs and DMD2, EMA 0.99 of the student); `fit` exports the student
    to run/model."""
    cfg = toy_train_config(steps, seed, batch_size=batch, schedule="constant", ema_decay=0.99)
    task = DistillTask(teacher, cfg, settings, seed=seed)
    data = MixtureClips(64 * batch, seed)
    return Trainer(task, cfg, run, data, collate_clips, progress=False, cpu=True)


def exported_student(model_dir: Path) -> tuple[ToyDenoiser, SamplerSettings]:
    """The (EMA) student of an exported model folder, frozen, and the sampler its config names."""
    sampler = load_config(ModelConfig, model_dir / "config.json").sampler
    student = ToyDenoiser()
    student.load_state_dict(read_safetensors(model_dir / "denoiser.safetensors"))
    settings = SamplerSettings(sampler.method, sampler.steps, sampler.cfg, sampler.shift)
    return student.requires_grad_(False).eval(), settings


def generate(
    denoiser: nn.Module, conditioner: ToyConditioner, settings: SamplerSettings, n: int, seed: int
) -> tuple[Tensor, Tensor]:
    """n samples (n, 2) by `sample_latents` (the path of `generate`), classes exactly
    balanced, and their class labels (n,)."""
    labels = torch.arange(n) % CLASSES
    inputs = ConditionInputs(n, text=[CLASS_NAMES[c] for c in labels])
    with torch.no_grad():
        cond = conditioner(inputs, 1, DURATION)
        latents, _ = sample_latents(denoiser, conditioner, cond, settings, seed, DURATION)
    return latents[..., 0], labels
