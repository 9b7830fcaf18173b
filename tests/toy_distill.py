"""Toy DMD distillation shared by the fast and the slow proofs: a 2-D Gaussian mixture.

Eight well-separated modes on a circle; the condition is one of four classes, each owning two
opposite modes (so a conditional sample is still bimodal and mode collapse is observable), plus
a learned null class for CFG. The teacher is trained by flow matching; student and fake score
start from it; the teacher is frozen. Quality is the energy distance to the true mixture, with
the mixture's side in closed form (so only the model's own samples add estimator noise).

Distillation defaults: 5 critic updates per generator update and generator lr 3e-4 (with 2
and 1e-3 the student scored 0.03-0.04 against its teacher's 0.021: the fake score lagged). The
discriminator reads one 32-wide branch (kernel 1: the features are single tokens) on the last
layer. The GAN draws its real samples, noise levels and noise from its own generator, so a
GAN-on run sees the same DMD noise as the plain run of the same seed and the two differ only
by the GAN term (seed 0, plain 0.0232: GAN-on 0.0297 on a shared stream, 0.0234 on its own).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from audiox_turbo.distill.discriminator import (
    DiscriminatorHead,
    discriminator_logits,
    gan_discriminator_loss,
    gan_generator_loss,
    sample_gan_timesteps,
)
from audiox_turbo.distill.dmd import (
    TwoTimescaleSchedule,
    backward_simulate,
    bind_condition,
    bind_features,
    distribution_matching_loss,
    fake_score_loss,
    sample_dmd_timesteps,
)
from audiox_turbo.flow import (
    guided_velocity,
    interpolate,
    sample_euler,
    sample_student,
    student_timesteps,
    teacher_timesteps,
    velocity_target,
    x0_from_velocity,
)

MODES = 8
CLASSES = 4
NULL = CLASSES
RADIUS = 4.0
SIGMA = 0.25
HIDDEN = 64
GAN_STREAM = 1_000_003


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


def mode_fractions(x: Tensor) -> Tensor:
    """(MODES,) fraction of samples whose nearest centre is each mode."""
    nearest = torch.cdist(x.double(), mode_centres()).argmin(1)
    return torch.bincount(nearest, minlength=MODES).double() / len(x)


class ToyVelocityNet(nn.Module):
    """Follows the distill protocol: net(x_t (B, 2), t (B,), labels (B,), return_features)."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.hidden = hidden
        self.label = nn.Embedding(CLASSES + 1, 32)
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), 8)))
        self.layers = nn.ModuleList(
            [nn.Linear(2 + 16 + 32, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)]
        )
        self.out = nn.Linear(hidden, 2)

    def forward(
        self, x_t: Tensor, t: Tensor, labels: Tensor, return_features: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """v (B, 2); features: one (B, 1, hidden) per hidden layer."""
        angle = t[:, None] * self.freqs
        h = torch.cat([x_t, angle.sin(), angle.cos(), self.label(labels)], dim=1)
        features = []
        for layer in self.layers:
            h = nn.functional.silu(layer(h))
            features.append(h.unsqueeze(1))
        v = self.out(h)
        return (v, features) if return_features else v


def train_teacher(
    seed: int, steps: int, batch: int = 512, lr: float = 2e-3, hidden: int = HIDDEN
) -> ToyVelocityNet:
    """Conditional flow matching with 15% label dropout to the null class; frozen on return."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = ToyVelocityNet(hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        x0, labels = sample_mixture(batch, g)
        labels = torch.where(torch.rand(batch, generator=g) < 0.15, NULL, labels)
        eps = torch.randn(batch, 2, generator=g)
        t = torch.rand(batch, generator=g)
        loss = (net(interpolate(x0, eps, t), t, labels) - velocity_target(x0, eps)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.requires_grad_(False).eval()


@dataclass(frozen=True)
class DistillSettings:
    iterations: int = 5000
    batch: int = 512
    critic_updates: int = 5
    teacher_cfg: float = 1.0
    generator_lr: float = 3e-4
    critic_lr: float = 1e-3
    dmd_t_min: float = 0.02
    dmd_t_max: float = 0.98
    dmd_shift: float = 1.0
    gan_weight: float = 0.0
    gan_critic_weight: float = 1.0
    gan_max_t: float = 0.2
    head_kernel: int = 1
    ema_decay: float = 0.99


def distil(
    teacher: ToyVelocityNet, settings: DistillSettings, seed: int
) -> tuple[ToyVelocityNet, dict[str, int]]:
    """DMD with backward simulation and two-time-scale updates; returns the EMA student, counts."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    gan_g = torch.Generator().manual_seed(GAN_STREAM + seed)
    student, fake, ema = (copy.deepcopy(teacher) for _ in range(3))
    student.requires_grad_(True).train()
    fake.requires_grad_(True).train()
    head = DiscriminatorHead(
        teacher.hidden, layers=(-1,), hidden=32, kernel_size=settings.head_kernel
    )
    gen_opt = torch.optim.Adam(student.parameters(), lr=settings.generator_lr)
    critic_opt = torch.optim.Adam([*fake.parameters(), *head.parameters()], lr=settings.critic_lr)
    schedule = TwoTimescaleSchedule(settings.critic_updates)
    _, generator_updates = schedule.counts(settings.iterations)
    gen_decay = torch.optim.lr_scheduler.CosineAnnealingLR(gen_opt, generator_updates)
    steps = student_timesteps(4)
    use_gan = settings.gan_weight > 0
    counts = {"critic": 0, "generator": 0}
    b = settings.batch

    def dmd_timesteps() -> Tensor:
        return sample_dmd_timesteps(
            b, settings.dmd_t_min, settings.dmd_t_max, settings.dmd_shift, generator=g
        )

    for iteration in range(settings.iterations):
        labels = torch.randint(0, CLASSES, (b,), generator=g)
        student_fn = bind_condition(student, labels)
        fake_fn = bind_condition(fake, labels)
        k = int(torch.randint(0, len(steps), (1,), generator=g))
        x_t, t_k = backward_simulate(student_fn, torch.randn(b, 2, generator=g), steps, k, g)

        with torch.no_grad():
            x_fake = x0_from_velocity(x_t, t_k, student_fn(x_t, t_k))
        critic_loss = fake_score_loss(
            fake_fn, x_fake, dmd_timesteps(), torch.randn(b, 2, generator=g)
        )
        if use_gan:
            x_real, real_labels = sample_mixture(b, gan_g)
            t_gan = sample_gan_timesteps(b, settings.gan_max_t, gan_g).repeat(2)
            logits_real, logits_fake = discriminator_logits(
                bind_features(fake, torch.cat([real_labels, labels])),
                head,
                torch.cat([x_real, x_fake]),
                t_gan,
                torch.randn(2 * b, 2, generator=gan_g),
            ).chunk(2)
            critic_loss = critic_loss + settings.gan_critic_weight * gan_discriminator_loss(
                logits_real, logits_fake
            )
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
        counts["critic"] += 1

        if not schedule.updates_generator(iteration):
            continue
        x = x0_from_velocity(x_t, t_k, student_fn(x_t, t_k))
        pair = torch.cat([labels, torch.full_like(labels, NULL)])
        real_fn = guided_velocity(partial(teacher, labels=pair), settings.teacher_cfg)
        gen_loss = distribution_matching_loss(
            x, real_fn, fake_fn, dmd_timesteps(), torch.randn(b, 2, generator=g)
        )
        if use_gan:
            t_gan = sample_gan_timesteps(b, settings.gan_max_t, gan_g)
            logits = discriminator_logits(
                bind_features(fake, labels), head, x, t_gan, torch.randn(b, 2, generator=gan_g)
            )
            gen_loss = gen_loss + settings.gan_weight * gan_generator_loss(logits)
        gen_opt.zero_grad()
        gen_loss.backward()
        gen_opt.step()
        gen_decay.step()
        counts["generator"] += 1
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), student.parameters(), strict=True):
                p_ema.lerp_(p, 1 - settings.ema_decay)
    return ema, counts


def generate(net: nn.Module, method: str, steps: int, n: int, seed: int) -> Tensor:
    """n conditional samples (n, 2), classes exactly balanced, CFG off.

    method "student": the few-step DMD sampler; "euler": the teacher's Euler ODE.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    noise = torch.randn(n, 2, generator=g)
    velocity = bind_condition(net, labels)
    with torch.no_grad():
        if method == "student":
            return sample_student(velocity, noise, student_timesteps(steps), g)
        return sample_euler(velocity, noise, teacher_timesteps(steps))
