"""Convert the released AudioX-Turbo files into an audiox-turbo `official` model directory.

Reads the student checkpoint and `vae.ckpt` safely (`torch.load(weights_only=True)`, or
safetensors, single or sharded), tolerating the layouts the official loader tolerates
(spec §8): a nested `state_dict`/`model`/`student`/`student_state_dict` dict and
`module.`/`model.`/`student.`/`student.model.` key prefixes. Sources are applied in the
official order: CLIP dir, `vae.ckpt` into the audio-prompt VAE, the student file, then
`vae.ckpt` into the main VAE. Every model key must be provided (else ModelLoadError); keys that
match nothing are reported.

The Synchformer video extractor comes from its own `synchformer_state_dict.pth`: only its
`vfeat_extractor.*` keys are kept, each checked against the released shapes, and stored as
`synchformer.safetensors` (`convert_official(synchformer=...)` or `add_synchformer` on an
existing model directory).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from audiox_turbo.atomic import atomic_directory
from audiox_turbo.errors import ModelLoadError
from audiox_turbo.official.config import OfficialConfig, SynchformerConfig, official_preset

# Official state-dict prefix -> OfficialAudioXTurbo prefix; the rest of each key is unchanged.
# The first matching pair wins, so the audio-prompt VAE precedes its conditioner.
OFFICIAL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("model.model.", "denoiser."),
    ("maf_block.", "fusion."),
    ("conditioner.conditioners.video_prompt.", "video."),
    ("conditioner.conditioners.audio_prompt.pretransform.model.", "audio_prompt.codec."),
    ("conditioner.conditioners.audio_prompt.", "audio_prompt."),
    ("pretransform.model.", "codec."),
)
NESTED_STATE_KEYS = ("state_dict", "model", "student", "student_state_dict")
STRIPPED_PREFIXES = ("module.", "model.", "student.", "student.model.")
CLIP_KEY_PREFIXES = ("vision_model.", "visual_projection.")
CLIP_TARGET = "video.visual_encoder_model."


def to_model_key(official_key: str) -> str | None:
    """The OfficialAudioXTurbo key of an official state-dict key (None if it has no home)."""
    for official, ours in OFFICIAL_PREFIXES:
        if official_key.startswith(official):
            return ours + official_key[len(official) :]
    return None


def to_official_key(model_key: str) -> str:
    """Inverse of `to_model_key`."""
    for official, ours in OFFICIAL_PREFIXES:
        if model_key.startswith(ours):
            return official + model_key[len(ours) :]
    raise KeyError(model_key)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Flat {name: tensor} from a .ckpt/.pt/.pth/.bin (weights_only), .safetensors or a
    sharded safetensors `*.index.json`; a nested state dict is unwrapped as the official loader."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: checkpoint not found")
    try:
        state: object
        if path.name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            state = {k: v for shard in shards for k, v in load_file(path.parent / shard).items()}
        elif path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = _torch_load(path)
    except ModelLoadError:
        raise
    except Exception as e:
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise ModelLoadError(f"{path}: cannot read checkpoint ({detail})") from None
    if isinstance(state, dict):
        for key in NESTED_STATE_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: not a state dict (found {type(state).__name__})")
    return {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, Tensor)}


def _torch_load(path: Path) -> object:
    """torch.load with weights_only; memory-mapped when the file format allows it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        return torch.load(path, map_location="cpu", weights_only=True)


def read_clip_dir(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """CLIP vision weights (`vision_model.*`, `visual_projection.*`) from a local HF dir."""
    path = Path(path)
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    index = sorted(path.glob("*.safetensors.index.json"))
    if index:
        files = [index[0]]
    if not files:
        raise ModelLoadError(f"{path}: no CLIP weights (*.safetensors or pytorch_model.bin)")
    state: dict[str, Tensor] = {}
    for file in files:
        state.update(read_state_dict(file))
    return {k: v for k, v in state.items() if k.startswith(CLIP_KEY_PREFIXES)}


@dataclass
class ConversionReport:
    """What the converter did: where each model key came from, and what matched nothing."""

    matched: dict[str, int] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        parts = ", ".join(f"{n} from {source}" for source, n in self.matched.items())
        ignored = "".join(
            f"; {n} other {source} tensors ignored" for source, n in self.ignored.items()
        )
        return (
            f"{sum(self.matched.values())} tensors ({parts}); {len(self.unmatched)} unmatched"
            + ignored
        )


class _Assembler:
    """Collects tensors for the expected model keys, checking names and shapes."""

    def __init__(self, expected: dict[str, torch.Size]) -> None:
        self.expected = expected
        self.values: dict[str, Tensor] = {}
        self.report = ConversionReport()

    def offer(self, source: str, key: str, candidates: list[str | None], value: Tensor) -> None:
        for target in candidates:
            if target is not None and self.expected.get(target) == value.shape:
                self.values[target] = value
                self.report.matched[source] = self.report.matched.get(source, 0) + 1
                return
        homes = [t for t in candidates if t is not None and t in self.expected]
        reason = (
            f"shape {tuple(value.shape)} != {tuple(self.expected[homes[0]])}"
            if homes
            else "no such parameter"
        )
        self.report.unmatched.append(f"{source}: {key} ({reason})")


def _student_candidates(key: str) -> list[str | None]:
    names = [key] + [key[len(p) :] for p in STRIPPED_PREFIXES if key.startswith(p)]
    return [to_model_key(name) for name in names]


def assemble_state(
    ckpt: str | os.PathLike[str],
    vae: str | os.PathLike[str],
    config: OfficialConfig,
    clip: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, Tensor], ConversionReport]:
    """The full OfficialAudioXTurbo state dict (float32) from the official files + report."""
    from audiox_turbo.official.model import OfficialAudioXTurbo

    with torch.device("meta"):
        network = OfficialAudioXTurbo(replace(config, synchformer=None))
        expected = {k: v.shape for k, v in network.state_dict().items()}
    build = _Assembler(expected)
    if clip is not None:
        for key, value in read_clip_dir(clip).items():
            build.offer("clip", key, [CLIP_TARGET + key], value)
    vae_state = read_state_dict(vae)
    for key, value in vae_state.items():
        build.offer("vae", key, ["audio_prompt.codec." + key], value)
    for key, value in read_state_dict(ckpt).items():
        build.offer("ckpt", key, _student_candidates(key), value)
    for key, value in vae_state.items():
        if "audio_prompt.codec." + key in expected:
            build.offer("vae", key, ["codec." + key], value)
    missing = sorted(set(expected) - set(build.values))
    if missing:
        hint = (
            " (pass --clip DIR for the CLIP weights)" if missing[0].startswith(CLIP_TARGET) else ""
        )
        shown = ", ".join(to_official_key(k) for k in missing[:3])
        raise ModelLoadError(
            f"{ckpt}: {len(missing)} model tensors missing from the checkpoint files, "
            f"e.g. {shown}{hint}"
        )
    state = {k: v.to(torch.float32) for k, v in build.values.items()}
    return state, build.report


def read_synchformer_checkpoint(
    path: str | os.PathLike[str], config: SynchformerConfig
) -> tuple[dict[str, Tensor], int]:
    """(extractor state dict in float32 under the extractor's names, count of dropped keys)
    from a Synchformer checkpoint: the `vfeat_extractor.*` keys, all present with the shapes
    `config` gives (the released table at the default sizes); every other key is dropped."""
    from audiox_turbo.official.synchformer import (
        CHECKPOINT_PREFIX,
        UNUSED_KEYS,
        SynchformerVideoEncoder,
        unused_shapes,
    )

    state = read_state_dict(path)
    kept = {
        k[len(CHECKPOINT_PREFIX) :]: v for k, v in state.items() if k.startswith(CHECKPOINT_PREFIX)
    }
    if not kept:
        raise ModelLoadError(
            f"{path}: no {CHECKPOINT_PREFIX}* tensors "
            "(expected Synchformer's synchformer_state_dict.pth)"
        )
    with torch.device("meta"):
        module = SynchformerVideoEncoder(config)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()} | unused_shapes(config)
    problems = []
    for label, items in (
        ("missing", sorted(CHECKPOINT_PREFIX + k for k in set(expected) - set(kept))),
        ("unexpected", sorted(CHECKPOINT_PREFIX + k for k in set(kept) - set(expected))),
        (
            "wrong shape",
            [
                f"{CHECKPOINT_PREFIX}{k} {tuple(v.shape)} != {expected[k]}"
                for k, v in sorted(kept.items())
                if k in expected and tuple(v.shape) != expected[k]
            ],
        ),
    ):
        if items:
            more = f" (+{len(items) - 2} more)" if len(items) > 2 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:2])}{more}")
    if problems:
        raise ModelLoadError(
            f"{path}: not the Synchformer extractor of this config: {'; '.join(problems)}"
        )
    extractor = {
        k: v.to(torch.float32).contiguous() for k, v in kept.items() if k not in UNUSED_KEYS
    }
    return extractor, len(state) - len(kept)


def _with_synchformer(
    config: OfficialConfig, where: object, sizes: SynchformerConfig | None = None
) -> OfficialConfig:
    """`config` with a Synchformer config (`sizes`, else its own, else the released sizes),
    checked against the video conditioner's sync input."""
    try:
        return replace(config, synchformer=sizes or config.synchformer or SynchformerConfig())
    except ValueError as e:
        raise ModelLoadError(f"{where}: {e}") from None


def add_synchformer(
    model_dir: str | os.PathLike[str],
    synchformer: str | os.PathLike[str],
    sizes: SynchformerConfig | None = None,
) -> ConversionReport:
    """Add (or replace) the Synchformer extractor of an existing official model directory;
    `sizes` defaults to the directory's extractor config, else the released one."""
    from audiox_turbo.official.model import SYNCHFORMER_FILE
    from audiox_turbo.weights import write_safetensors

    model_dir = Path(model_dir)
    config = _with_synchformer(OfficialConfig.load(model_dir / "config.json"), model_dir, sizes)
    assert config.synchformer is not None
    state, dropped = read_synchformer_checkpoint(synchformer, config.synchformer)
    write_safetensors(model_dir / SYNCHFORMER_FILE, state)
    config.save(model_dir / "config.json")
    return ConversionReport(matched={"synchformer": len(state)}, ignored={"synchformer": dropped})


def convert_official(
    ckpt: str | os.PathLike[str],
    vae: str | os.PathLike[str],
    out: str | os.PathLike[str],
    t5: str | os.PathLike[str] | None = None,
    clip: str | os.PathLike[str] | None = None,
    config: OfficialConfig | None = None,
    overwrite: bool = False,
    synchformer: str | os.PathLike[str] | None = None,
) -> ConversionReport:
    """Write an `official` model dir at `out` (atomically: built beside it, then renamed);
    `synchformer` adds the video feature extractor from `synchformer_state_dict.pth`."""
    from audiox_turbo.official.model import COMPONENT_FILES, SYNCHFORMER_FILE, TEXT_ENCODER_DIR
    from audiox_turbo.official.text import OfficialTextConditioner
    from audiox_turbo.weights import write_safetensors

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ModelLoadError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ModelLoadError(f"{out}: output directory exists and is not empty")
    config = config or official_preset("official")
    sync_state: dict[str, Tensor] = {}
    if synchformer is not None:
        config = _with_synchformer(config, synchformer)
        assert config.synchformer is not None
        sync_state, dropped = read_synchformer_checkpoint(synchformer, config.synchformer)
    else:
        config = replace(config, synchformer=None)
    state, report = assemble_state(ckpt, vae, config, clip)
    if synchformer is not None:
        report.matched["synchformer"] = len(sync_state)
        report.ignored["synchformer"] = dropped
    with atomic_directory(out) as tmp:
        if sync_state:
            write_safetensors(tmp / SYNCHFORMER_FILE, sync_state)
        for component, names in COMPONENT_FILES.items():
            strip = len(names) == 1
            part = {
                (k.split(".", 1)[1] if strip else k): v
                for k, v in state.items()
                if k.split(".", 1)[0] in names
            }
            write_safetensors(tmp / f"{component}.safetensors", part)
        if t5 is not None:
            text = OfficialTextConditioner.from_dir(t5, config.text_max_tokens)
            text.encoder.save_pretrained(tmp / TEXT_ENCODER_DIR)
            text.tokenizer.save_pretrained(tmp / TEXT_ENCODER_DIR)
            config = replace(config, text_encoder=TEXT_ENCODER_DIR)
        config.save(tmp / "config.json")
    return report
