"""The world judge: a small log-mel CNN trained on the embedded world, and its accuracy.

The network maps 16 kHz audio to a clip embedding (for Fréchet distance) and three heads:
category (music / sfx / speech), class (every world class, named "category:class") and
instruments (multi-label). Tempo, key and onsets are measured, not learned
(`audiox_turbo/data/world/measure.py`). A judge is a directory: `config.json` +
`judge.safetensors`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox_turbo.atomic import atomic_directory
from audiox_turbo.config import from_dict
from audiox_turbo.data.world.judge_vocabulary import (
    JUDGE_CLASSES,
    JUDGE_INSTRUMENTS,
    judge_class,
    judge_instruments,
)
from audiox_turbo.data.world.labels import CATEGORIES
from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.eval.embedders import WaveformEmbedder, load_weights, read_state_dict
from audiox_turbo.eval.features import Waveforms, mono_at_rate, periodic_hann
from audiox_turbo.mel import mel_filterbank

WEIGHTS_FILE = "judge.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class JudgeConfig:
    """Front end, network widths and label vocabularies of a judge."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 320
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float = 8000.0
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    categories: tuple[str, ...] = CATEGORIES
    classes: tuple[str, ...] = JUDGE_CLASSES
    instruments: tuple[str, ...] = JUDGE_INSTRUMENTS


class LogMel(nn.Module):
    """`(B, S)` waveform → `(B, frames, n_mels)` log-power mel, frames = 1 + S // hop (centred)."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.n_fft, self.hop = config.n_fft, config.hop
        mel = mel_filterbank(
            config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax, "slaney"
        )
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)
        window = torch.from_numpy(periodic_hann(config.n_fft)).float()
        self.register_buffer("window", window, persistent=False)

    def forward(self, wave: Tensor) -> Tensor:
        spec = torch.stft(
            wave, self.n_fft, self.hop, window=self.window, center=True, return_complex=True
        )
        power = (spec.real**2 + spec.imag**2).transpose(1, 2)
        return torch.log10(power @ self.mel + 1e-8)


class ConvBlock(nn.Module):
    """Two 3×3 conv + BatchNorm + ReLU layers, then 2×2 average pooling: `(B, C, T, F)` →
    `(B, C', T//2, F//2)`."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, 2, ceil_mode=True)


@dataclass
class JudgeOutput:
    """Clip embeddings `(B, embed_dim)`; head logits `(B, categories | classes | instruments)`."""

    embedding: Tensor
    category: Tensor
    klass: Tensor
    instruments: Tensor


class JudgeNet(nn.Module):
    """Log-mel CNN: waveform `(B, S)` at 16 kHz → `JudgeOutput`."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = LogMel(config)
        self.norm = nn.BatchNorm1d(config.n_mels)
        widths = (1, *config.channels)
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in itertools.pairwise(widths))
        self.project = nn.Linear(2 * config.channels[-1], config.embed_dim)
        self.category_head = nn.Linear(config.embed_dim, len(config.categories))
        self.class_head = nn.Linear(config.embed_dim, len(config.classes))
        self.instrument_head = nn.Linear(config.embed_dim, len(config.instruments))

    def features(self, mel: Tensor) -> Tensor:
        """Log mel `(B, T, n_mels)` → clip embeddings `(B, embed_dim)`."""
        x = self.norm(mel.transpose(1, 2)).transpose(1, 2).unsqueeze(1)
        for block in self.blocks:
            x = block(x)
        x = x.mean(dim=3)
        pooled = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        return self.project(pooled)

    def heads(self, embedding: Tensor) -> JudgeOutput:
        """Head logits of clip embeddings `(B, embed_dim)`."""
        h = embedding
        return JudgeOutput(
            embedding, self.category_head(h), self.class_head(h), self.instrument_head(h)
        )

    def forward(self, wave: Tensor) -> JudgeOutput:
        return self.heads(self.features(self.frontend(wave)))


def save_judge(net: JudgeNet, out_dir: str | os.PathLike[str], meta: dict[str, Any]) -> Path:
    """Write `config.json` (config + `meta`) and `judge.safetensors` into `out_dir` atomically."""
    from safetensors.torch import save_file

    root = Path(out_dir)
    with atomic_directory(root) as tmp:
        (tmp / CONFIG_FILE).write_text(
            json.dumps({"config": asdict(net.config), "meta": meta}, indent=2) + "\n"
        )
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        for file in (tmp / CONFIG_FILE, tmp / WEIGHTS_FILE):
            file.chmod(0o644)
    return root


def shipped_judge_dir() -> Path:
    """The judge shipped with the package (`audiox_turbo/assets/judge`)."""
    return Path(__file__).resolve().parents[1] / "assets" / "judge"


def load_judge(checkpoint: str | os.PathLike[str] | None = None, device: str = "cpu") -> JudgeNet:
    """A judge from a directory (or its `judge.safetensors`); None: the shipped judge."""
    path = Path(checkpoint) if checkpoint is not None else shipped_judge_dir()
    root = path.parent if path.suffix == ".safetensors" else path
    config_file = root / CONFIG_FILE
    if not config_file.is_file():
        raise ModelLoadError(
            f"{config_file}: judge config not found (train one with `audiox-turbo judge train`)"
        )
    try:
        config = from_dict(JudgeConfig, json.loads(config_file.read_text())["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{config_file}: invalid judge config ({exc})") from None
    net = JudgeNet(config)
    load_weights(
        net, read_state_dict(root / WEIGHTS_FILE, "judge.safetensors"), root / WEIGHTS_FILE
    )
    return net.to(device).eval()


class JudgeEmbedder(WaveformEmbedder):
    """The world judge as an `AudioTagger`: clip embeddings `(B, 128)`, class logits (softmax)."""

    name = "judge"
    kind = "clip"
    activation = "softmax"

    def __init__(self, net: JudgeNet, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.sample_rate = net.config.sample_rate
        self.dim = net.config.embed_dim
        self.num_classes = len(net.config.classes)
        self.batch_size = 16

    def _forward(self, wave: Tensor) -> tuple[Tensor, ...]:
        min_samples = self.net.config.n_fft
        if wave.shape[-1] < min_samples:
            wave = F.pad(wave, (0, min_samples - wave.shape[-1]))
        out = self.net(wave)
        return out.embedding, out.klass, out.category, out.instruments

    def classify(self, waveforms: Waveforms, sr: int) -> Tensor:
        """Class logits `(B, num_classes)`."""
        return self._outputs(waveforms, sr)[1]

    def embed_and_classify(self, waveforms: Waveforms, sr: int) -> tuple[Tensor, Tensor]:
        """Clip embeddings `(B, dim)` and class logits `(B, num_classes)`."""
        emb, klass, _, _ = self._outputs(waveforms, sr)
        return emb, klass

    def all_outputs(self, waveforms: Waveforms, sr: int) -> JudgeOutput:
        """Embeddings and every head's logits for a batch (or list of any lengths) of clips."""
        emb, klass, cat, inst = self._outputs(waveforms, sr)
        return JudgeOutput(emb, cat, klass, inst)


def load_judge_embedder(
    checkpoint: str | os.PathLike[str] | None, device: str = "cpu"
) -> JudgeEmbedder:
    """The `judge` entry of the embedder registry (None: the shipped judge)."""
    return JudgeEmbedder(load_judge(checkpoint, device), device)


# --- training --------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeTargets:
    """Training targets for N clips: category and class indices `(N,)`, instruments `(N, I)`."""

    category: Tensor
    klass: Tensor
    instruments: Tensor


def targets_from_labels(labels: Sequence[dict[str, Any]], config: JudgeConfig) -> JudgeTargets:
    """Targets from world labels; an unknown category or class raises an AudioXError."""
    cat_index = {c: i for i, c in enumerate(config.categories)}
    cls_index = {c: i for i, c in enumerate(config.classes)}
    inst_index = {c: i for i, c in enumerate(config.instruments)}
    cats, classes = [], []
    inst = torch.zeros(len(labels), len(config.instruments))
    for i, lab in enumerate(labels):
        name = judge_class(lab)
        if lab.get("category") not in cat_index or name not in cls_index:
            raise AudioXError(f"clip {i}: label {name!r} is not a world class the judge knows")
        cats.append(cat_index[lab["category"]])
        classes.append(cls_index[name])
        for instrument in judge_instruments(lab):
            if instrument in inst_index:
                inst[i, inst_index[instrument]] = 1.0
    return JudgeTargets(torch.tensor(cats), torch.tensor(classes), inst)


INSTRUMENT_WEIGHT = 4.0
"""Weight of the instrument loss: its binary cross-entropy is averaged over 15 labels, most of
them absent, and would otherwise be small next to the class cross-entropy."""


def judge_loss(out: JudgeOutput, targets: JudgeTargets) -> Tensor:
    """CE(category) + CE(class) + INSTRUMENT_WEIGHT · BCE(instruments)."""
    return (
        F.cross_entropy(out.category, targets.category)
        + F.cross_entropy(out.klass, targets.klass)
        + INSTRUMENT_WEIGHT
        * F.binary_cross_entropy_with_logits(out.instruments, targets.instruments)
    )


@dataclass
class TrainHistory:
    """Per-epoch mean training loss and class accuracy (on the training forward passes)."""

    loss: list[float] = field(default_factory=list)
    class_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_judge(
    waves: Tensor,
    targets: JudgeTargets,
    config: JudgeConfig,
    epochs: int = 16,
    batch_size: int = 32,
    lr: float = 3e-3,
    crop_seconds: float | None = 2.0,
    seed: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
    init: JudgeNet | None = None,
) -> tuple[JudgeNet, TrainHistory]:
    """Train a judge on mono waveforms `(N, S)` at `config.sample_rate` (AdamW, one-cycle
    cosine learning rate, random crops of `crop_seconds` and random gains of ±6 dB), from
    random weights or from the judge `init`: all of it when its vocabulary (categories, classes,
    instruments) is this one, else its trunk (all but the heads)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = JudgeNet(config)
    if init is not None:
        vocabulary = ("categories", "classes", "instruments")
        same = all(getattr(init.config, v) == getattr(config, v) for v in vocabulary)
        start = {k: v for k, v in init.state_dict().items() if same or "_head." not in k}
        try:
            net.load_state_dict(start, strict=False)
        except RuntimeError as exc:
            raise AudioXError(f"--init: judge trunk does not fit this network ({exc})") from None
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-2)
    n = waves.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch), pct_start=0.15
    )
    crop = waves.shape[1]
    if crop_seconds is not None:
        crop = min(crop, round(crop_seconds * config.sample_rate))
    history = TrainHistory()
    start = time.perf_counter()
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        total, correct = 0.0, 0
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            offset = int(torch.randint(0, waves.shape[1] - crop + 1, (1,), generator=gen))
            batch = waves[idx, offset : offset + crop]
            gain = 10.0 ** (torch.empty(len(idx), 1).uniform_(-6.0, 6.0, generator=gen) / 20.0)
            out = net(batch * gain)
            sub = JudgeTargets(targets.category[idx], targets.klass[idx], targets.instruments[idx])
            loss = judge_loss(out, sub)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((out.klass.argmax(1) == sub.klass).sum())
        history.loss.append(total / n)
        history.class_accuracy.append(correct / n)
        if on_epoch is not None:
            on_epoch(epoch, history.loss[-1], history.class_accuracy[-1])
    history.seconds = time.perf_counter() - start
    return net.eval(), history


def load_clips(paths: Sequence[Path], sample_rate: int, seconds: float | None = None) -> Tensor:
    """Mono clips `(N, S)` at `sample_rate`, cut or zero-padded to `seconds` (default: the
    first clip's length)."""
    import soundfile as sf

    clips = []
    for path in paths:
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (OSError, RuntimeError) as exc:
            raise AudioXError(f"{path}: cannot read audio ({exc})") from None
        clips.append(mono_at_rate(data.T[None], rate, sample_rate)[0])
    if not clips:
        raise AudioXError("no clips to load")
    length = round(seconds * sample_rate) if seconds is not None else clips[0].size
    out = np.zeros((len(clips), length), dtype=np.float32)
    for i, c in enumerate(clips):
        out[i, : min(length, c.size)] = c[:length]
    return torch.from_numpy(out)


def resolve_manifest(data: str | os.PathLike[str], split: str = "train") -> Path:
    """A manifest path from `data`: the file itself, or `<split>.jsonl` (or the only `.jsonl`)
    inside a directory."""
    path = Path(data)
    if path.is_file():
        return path
    if not path.is_dir():
        raise AudioXError(f"{path}: no such manifest or directory")
    if (path / f"{split}.jsonl").is_file():
        return path / f"{split}.jsonl"
    found = sorted(path.glob("*.jsonl"))
    if len(found) != 1:
        raise AudioXError(f"{path}: expected {split}.jsonl (or a single .jsonl manifest) in it")
    return found[0]


def manifest_clips(
    manifest: Path, sample_rate: int, seconds: float | None = None
) -> tuple[Tensor, list[dict[str, Any]]]:
    """Mono clips `(N, S)` and world labels of every record of a manifest."""
    from audiox_turbo.data.manifest import manifest_root, read_manifest

    records = read_manifest(manifest)
    if not records:
        raise AudioXError(f"{manifest}: manifest has no clips")
    root = manifest_root(manifest)
    waves = load_clips([r.audio_path(root) for r in records], sample_rate, seconds)
    return waves, [r.labels for r in records]


def train_judge_on_manifest(
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    epochs: int = 16,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
    crop_seconds: float = 2.0,
    init: str | os.PathLike[str] | None = None,
) -> tuple[Path, TrainHistory]:
    """Train a judge on one or more world splits (directories or manifests; e.g. a real-source
    and a synthetic world, clipped to the first one's length) and save it to `out_dir`;
    `init`: a judge directory that starts the training (its heads too when its vocabulary is
    this one)."""
    if epochs < 1:
        raise AudioXError(f"--epochs {epochs}: must be >= 1")
    if crop_seconds <= 0:
        raise AudioXError(f"--crop {crop_seconds}: must be > 0 seconds")
    sources = [data] if isinstance(data, str | os.PathLike) else list(data)
    if not sources:
        raise AudioXError("--data: give at least one world split")
    manifests = [resolve_manifest(d, "train") for d in sources]
    config = JudgeConfig()
    waves, labels = manifest_clips(manifests[0], config.sample_rate)
    for manifest in manifests[1:]:
        more, more_labels = manifest_clips(
            manifest, config.sample_rate, waves.shape[1] / config.sample_rate
        )
        waves, labels = torch.cat([waves, more]), labels + more_labels
    targets = targets_from_labels(labels, config)
    start = load_judge(init) if init is not None else None
    net, history = train_judge(
        waves, targets, config, epochs, batch_size, lr, crop_seconds, seed, on_epoch, start
    )
    meta = {
        "trained_on": [str(m) for m in manifests],
        "init": None if init is None else str(init),
        "clips": int(waves.shape[0]),
        "epochs": epochs,
        "final_loss": history.loss[-1],
        "train_seconds": round(history.seconds, 1),
    }
    return save_judge(net, out_dir, meta), history


def judge_accuracy(
    judge: JudgeEmbedder, manifest: str | os.PathLike[str], progress: bool = True
) -> dict[str, Any]:
    """Accuracy of every head and measurement on a labelled world split: category and class
    accuracy (also per category), instrument micro-F1 and exact-set accuracy (music), key
    accuracy (music with pitched instruments), tempo within 4 % (music), onset recall and error
    at 50 ms."""
    from tqdm import tqdm

    from audiox_turbo.data.world.labels import has_measurable_key
    from audiox_turbo.data.world.measure import detect_onsets, estimate_key, estimate_tempo
    from audiox_turbo.eval.metrics import event_timing_error
    from audiox_turbo.eval.world_benchmark import TEMPO_TOLERANCE

    config = judge.net.config
    waves, labels = manifest_clips(Path(manifest), config.sample_rate)
    targets = targets_from_labels(labels, config)
    parts = [
        judge.all_outputs(waves[i : i + 32], config.sample_rate)
        for i in tqdm(range(0, len(waves), 32), desc="judge", disable=not progress)
    ]
    category = torch.cat([p.category for p in parts]).argmax(1)
    klass = torch.cat([p.klass for p in parts]).argmax(1)
    instruments = torch.cat([p.instruments for p in parts]) > 0
    music = torch.tensor([lab["category"] == "music" for lab in labels])
    truth = targets.instruments[music] > 0.5
    guess = instruments[music]
    tp = int((truth & guess).sum())
    f1 = 2 * tp / max(1, int(truth.sum()) + int(guess.sum()))
    keys, tempos, recalls, errors = [], [], [], []
    for i, lab in enumerate(tqdm(labels, desc="measure", disable=not progress)):
        audio = waves[i].numpy()
        if lab["category"] == "music" and lab.get("tempo"):
            tempo = estimate_tempo(audio, config.sample_rate)
            tempos.append(
                tempo is not None and abs(tempo - lab["tempo"]) <= TEMPO_TOLERANCE * lab["tempo"]
            )
            if has_measurable_key(lab):
                keys.append(estimate_key(audio, config.sample_rate) == (lab["key"], lab["mode"]))
        if lab["category"] == "sfx" and lab.get("event_times"):
            timing = event_timing_error(
                detect_onsets(audio, config.sample_rate), lab["event_times"], tolerance=0.05
            )
            recalls.append(timing.matched / len(lab["event_times"]))
            if timing.matched:
                errors.append(timing.mean_abs_error)
    return {
        "clips": len(labels),
        "category_accuracy": float((category == targets.category).float().mean()),
        "class_accuracy": float((klass == targets.klass).float().mean()),
        **{
            f"class_accuracy_{name}": float(
                (klass == targets.klass)[targets.category == c].float().mean()
            )
            for c, name in enumerate(config.categories)
            if bool((targets.category == c).any())
        },
        "music_clips": int(music.sum()),
        "instrument_f1": f1,
        "instrument_set_accuracy": float((truth == guess).all(dim=1).float().mean()),
        "key_clips": len(keys),
        "key_accuracy": float(np.mean(keys)) if keys else float("nan"),
        "tempo_clips": len(tempos),
        "tempo_accuracy_4pct": float(np.mean(tempos)) if tempos else float("nan"),
        "onset_clips": len(recalls),
        "onset_recall_50ms": float(np.mean(recalls)) if recalls else float("nan"),
        "onset_error_s": float(np.mean(errors)) if errors else float("nan"),
    }
