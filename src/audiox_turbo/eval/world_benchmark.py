"""`audiox-turbo benchmark world`: generate the world's test prompts for every task and score the
generations with the world judge against the clips' labels.

Per task: Fréchet distance of judge embeddings (generated vs the reference clips), the mean
paired embedding distance, class accuracy (judge class == the label's judge class, in the
vocabulary shared by both source families), tempo error and key accuracy (music tasks), onset
timing error (video tasks) and a CLAP score when a CLAP encoder is given. Not applicable
metrics are None. Per clip, world_clips.jsonl says what the judge heard (which classes a model
confuses).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audiox_turbo.data.manifest import TASKS, ClipRecord
from audiox_turbo.errors import AudioXError

if TYPE_CHECKING:
    from audiox_turbo.interface import Pipeline

VIDEO_TASKS = ("V2A", "V2M", "TV2A", "TV2M")
MUSIC_TASKS = ("T2M", "V2M", "TV2M", "continue")
ONSET_CAP_S = 0.5
"""A labelled event with no detected onset within this many seconds counts as this error."""
TEMPO_TOLERANCE = 0.04
"""A tempo counts as right within 4 % of the label."""
MAX_WORLD_CLIPS = 4096
EMBEDDINGS_FILE = "world_embeddings.npz"


def task_allowed(task: str, labels: dict[str, Any], has_video: bool) -> bool:
    """Whether a clip can serve as a prompt of `task` (the world's task framings)."""
    from audiox_turbo.data.world.tasks import AUDIO_TASKS

    return task in AUDIO_TASKS.get((labels.get("category"), has_video), ())


@dataclass(frozen=True)
class WorldPrompt:
    """One generation request built from a world clip."""

    task: str
    record: ClipRecord
    text: str | None
    video: Path | None
    audio: Path | None
    audio_mode: str
    span: tuple[float, float] | None
    reference: Path


def _default_span(task: str, duration: float) -> tuple[float, float]:
    return (0.3 * duration, 0.7 * duration) if task == "inpaint" else (0.0, 0.5 * duration)


def make_prompt(task: str, record: ClipRecord, root: Path) -> WorldPrompt:
    """The prompt of `task` for a clip: captions for T*, the video for *V*, the clip's audio with
    its region (or a default one) for inpaint / continue."""
    text = record.captions[0] if record.captions and not task.startswith("V") else None
    reference = record.audio_path(root)
    video = record.video_path(root) if task in VIDEO_TASKS else None
    if task not in ("inpaint", "continue"):
        return WorldPrompt(task, record, text, video, None, "continue", None, reference)
    region = record.labels.get("task_region")
    own = record.labels.get("task") == task and region is not None
    if task == "inpaint":
        span = (float(region[0]), float(region[1])) if own else _default_span(task, record.duration)
    else:
        span = (0.0, float(region[0])) if own else _default_span(task, record.duration)
    return WorldPrompt(task, record, text, None, reference, task, span, reference)


def parse_tasks(text: str | None) -> tuple[str, ...]:
    """Tasks from a comma-separated list (None or empty: all of them); an unknown one is an
    AudioXError listing the known."""
    if not text:
        return TASKS
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise AudioXError(f"--tasks: unknown tasks {unknown}; known: {', '.join(TASKS)}")
    return tasks


def select_prompts(
    records: list[ClipRecord],
    root: Path,
    clips_per_task: int,
    tasks: tuple[str, ...] = TASKS,
) -> dict[str, list[WorldPrompt]]:
    """Up to `clips_per_task` prompts for each of `tasks` (see `parse_tasks`), preferring
    clips drawn for that task."""
    chosen: dict[str, list[WorldPrompt]] = {}
    for task in tasks:
        usable = [r for r in records if task_allowed(task, r.labels, r.video is not None)]
        usable.sort(key=lambda r: r.labels.get("task") != task)
        chosen[task] = [make_prompt(task, r, root) for r in usable[:clips_per_task]]
    return chosen


def ensure_world(
    out_dir: Path,
    clips_per_task: int,
    duration: float,
    seed: int = 0,
    progress: bool = True,
    sources: str = "auto",
) -> Path:
    """A world test split under `out_dir` large enough to give `clips_per_task` prompts to every
    task (grown by doubling; generation resumes, so earlier clips are kept). `sources`: auto
    (the real-source world when its sources are present), real or synthetic."""
    from audiox_turbo.data.manifest import read_manifest
    from audiox_turbo.data.world.generate import generate_world

    count = max(16, 8 * clips_per_task)
    while True:
        manifest = generate_world(
            out_dir, count, seed, "test", duration, progress=progress, sources=sources
        )
        chosen = select_prompts(read_manifest(manifest), out_dir, clips_per_task)
        if all(len(p) >= clips_per_task for p in chosen.values()) or count >= MAX_WORLD_CLIPS:
            return manifest
        count *= 2


@dataclass
class ClipScore:
    """Judge readings of one generated clip and its reference."""

    task: str
    id: str
    embedding: np.ndarray
    reference: np.ndarray
    predicted_class: str
    class_correct: bool
    tempo_error: float | None
    key_correct: bool | None
    onset_error: float | None
    clap: float | None
    expected_class: str | None = None
    reference_class: str | None = None
    sample: int = 0

    def record(self, text: str | None, seed: int) -> dict[str, Any]:
        """One line of world_clips.jsonl: the prompt, the judge's classes (generated,
        expected, reference clip's own) and the clip's measurements."""
        return {
            "task": self.task,
            "id": self.id,
            "text": text,
            "seed": seed,
            "sample": self.sample,
            "expected_class": self.expected_class,
            "predicted_class": self.predicted_class,
            "reference_class": self.reference_class,
            "class_correct": self.class_correct,
            "tempo_error": self.tempo_error,
            "key_correct": self.key_correct,
            "onset_error": self.onset_error,
            "clap": self.clap,
        }


def onset_error(detected: np.ndarray, events: list[float], cap: float = ONSET_CAP_S) -> float:
    """Mean over labelled events of min(|nearest detected onset − event|, cap), in seconds."""
    if len(detected) == 0:
        return cap
    det = np.asarray(detected, dtype=np.float64)
    return float(np.mean([min(np.abs(det - t).min(), cap) for t in events]))


def tempo_error(estimate: float | None, label: float) -> float:
    """Relative tempo error |estimate − label| / label (1.0 when no tempo was measured)."""
    return 1.0 if estimate is None else abs(estimate - label) / label


def score_clip(
    prompt: WorldPrompt,
    audio: np.ndarray,
    sample_rate: int,
    embedding: np.ndarray,
    reference: np.ndarray,
    predicted_class: str,
    clap: float | None = None,
    reference_class: str | None = None,
) -> ClipScore:
    """Compare a generated mono clip's judge readings with its world labels."""
    from audiox_turbo.data.world.judge_vocabulary import judge_class
    from audiox_turbo.data.world.labels import has_measurable_key
    from audiox_turbo.data.world.measure import detect_onsets, estimate_key, estimate_tempo

    labels = prompt.record.labels
    tempo = key = onset = None
    if prompt.task in MUSIC_TASKS and labels.get("tempo"):
        tempo = tempo_error(estimate_tempo(audio, sample_rate), float(labels["tempo"]))
        if has_measurable_key(labels):
            key = estimate_key(audio, sample_rate) == (labels["key"], labels["mode"])
    if prompt.task in VIDEO_TASKS and labels.get("event_times"):
        onset = onset_error(detect_onsets(audio, sample_rate), labels["event_times"])
    expected = judge_class(labels)
    return ClipScore(
        prompt.task,
        prompt.record.id,
        embedding,
        reference,
        predicted_class,
        predicted_class == expected,
        tempo,
        key,
        onset,
        clap,
        expected,
        reference_class,
    )


def largest_share(predicted: list[str]) -> float | None:
    """The share of the outputs judged as the most frequent class (mode collapse: → 1)."""
    if not predicted:
        return None
    return max(predicted.count(c) for c in set(predicted)) / len(predicted)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(task: str, scores: list[ClipScore]) -> dict[str, Any]:
    """One table row: clips, fd (all samples against each reference once), embedding
    distance, class accuracy, tempo error (%), tempo accuracy within 4 %, key accuracy, onset
    error (s; mean and median over clips), CLAP score."""
    from audiox_turbo.eval.metrics import frechet_distance

    row: dict[str, Any] = {"task": task, "clips": len(scores)}
    fd = None
    references = [s.reference for s in scores if s.sample == 0]
    if len(references) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fd = frechet_distance(np.stack(references), np.stack([s.embedding for s in scores]))
    tempos = [s.tempo_error for s in scores if s.tempo_error is not None]
    keys = [float(s.key_correct) for s in scores if s.key_correct is not None]
    onsets = [s.onset_error for s in scores if s.onset_error is not None]
    row.update(
        fd=fd,
        embedding_distance=_mean(
            [float(np.linalg.norm(s.embedding - s.reference)) for s in scores]
        ),
        class_accuracy=_mean([float(s.class_correct) for s in scores]),
        largest_class_share=largest_share([s.predicted_class for s in scores]),
        tempo_error_pct=None if not tempos else 100.0 * float(np.median(tempos)),
        tempo_accuracy=_mean([float(t <= TEMPO_TOLERANCE) for t in tempos]),
        key_accuracy=_mean(keys),
        onset_error_s=_mean(onsets),
        onset_error_median_s=float(np.median(onsets)) if onsets else None,
        clap=_mean([s.clap for s in scores if s.clap is not None]),
    )
    return row


COLUMNS = (
    ("task", "task"),
    ("clips", "clips"),
    ("fd", "FD (judge)"),
    ("embedding_distance", "emb. dist"),
    ("class_accuracy", "class acc"),
    ("largest_class_share", "top class share"),
    ("tempo_error_pct", "tempo err %"),
    ("tempo_accuracy", "tempo ≤4 %"),
    ("key_accuracy", "key acc"),
    ("onset_error_s", "onset err s"),
    ("onset_error_median_s", "onset median s"),
    ("clap", "CLAP"),
)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The benchmark rows as a Markdown table ("–": not applicable)."""

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "–"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(cell(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


def run_world_benchmark(
    pipe: Pipeline,
    prompts: dict[str, list[WorldPrompt]],
    out_dir: str | os.PathLike[str],
    steps: int | None = None,
    cfg: float | None = None,
    seed: int = 0,
    judge: Any = None,
    clap: Any = None,
    progress: bool = True,
    method: str | None = None,
    samples: int = 1,
) -> dict[str, Any]:
    """Generate every prompt `samples` times with `pipe` (prompt i: seed `seed + i`, one batch;
    method, steps, cfg: None = the model's own), save the audio under `out_dir/gen/<task>/`
    (`<id>.wav`, or `<id>_s<k>.wav` for k < samples), score it with the judge (default: the
    shipped one) and write world_benchmark.json / .md, which record the sampling used,
    world_clips.jsonl, one line per generated clip, and world_embeddings.npz: the judge's
    embeddings of each clip's reference and of the generations, `(N · samples, dim)` each in
    the clips' order (`ids`, `tasks`, `samples`; a prompt's samples are consecutive)."""
    from tqdm import tqdm

    from audiox_turbo.atomic import atomic_file, write_json_atomic
    from audiox_turbo.eval.judge import load_judge_embedder
    from audiox_turbo.io.audio import load_audio, save_audio

    judge = judge if judge is not None else load_judge_embedder(None)
    out = Path(out_dir)
    flat = [p for task in TASKS for p in prompts.get(task, [])]
    if not flat:
        raise AudioXError(f"{out}: no world prompts to generate")
    if samples < 1:
        raise AudioXError(f"samples per prompt must be >= 1, got {samples}")
    sr = judge.sample_rate
    classes = judge.net.config.classes
    scores: list[ClipScore] = []
    for i, prompt in enumerate(tqdm(flat, desc="world benchmark", disable=not progress)):
        result = pipe(
            text=prompt.text,
            video=None if prompt.video is None else str(prompt.video),
            audio=None if prompt.audio is None else str(prompt.audio),
            audio_mode=prompt.audio_mode,
            span=prompt.span,
            duration=prompt.record.duration,
            steps=steps,
            cfg=cfg,
            seed=seed + i,
            num_outputs=samples,
            method=method,
        )
        gen_audio = []
        for k, wav in enumerate(result.waveforms):
            name = prompt.record.id if samples == 1 else f"{prompt.record.id}_s{k}"
            save_audio(out / "gen" / prompt.task / f"{name}.wav", wav, result.sample_rate)
            gen_audio.append(judge_input(wav.numpy(), result.sample_rate, sr))
        ref_audio = load_audio(prompt.reference, sample_rate=sr, channels=1)[0]
        outputs = judge.all_outputs([*gen_audio, ref_audio[0].numpy()], sr)
        heard = [classes[int(k.argmax())] for k in outputs.klass]
        claps: list[float | None] = [None] * samples
        if clap is not None and prompt.record.captions:
            from audiox_turbo.eval.metrics import clap_score

            text = clap.embed_text([prompt.record.captions[0]]).numpy()
            audio_emb = clap.embed(gen_audio, sr).numpy()
            claps = [clap_score(text, audio_emb[k : k + 1]) for k in range(samples)]
        emb = outputs.embedding.numpy().astype(np.float64)
        for k, audio in enumerate(gen_audio):
            clip = score_clip(prompt, audio, sr, emb[k], emb[-1], heard[k], claps[k], heard[-1])
            scores.append(replace(clip, sample=k))
    rows = [summarise(task, [s for s in scores if s.task == task]) for task in TASKS]
    rows.append(summarise("all", scores))
    report = {
        "model": pipe.config.name,
        "trained": pipe.trained,
        "method": result.method,
        "steps": result.steps,
        "cfg": result.cfg,
        "seed": seed,
        "samples": samples,
        "rows": rows,
    }
    write_json_atomic(out / "world_benchmark.json", report)
    with atomic_file(out / "world_benchmark.md") as tmp:
        tmp.write_text(markdown_table(rows))
    with atomic_file(out / EMBEDDINGS_FILE) as tmp, tmp.open("wb") as f:
        np.savez(
            f,
            ids=np.array([s.id for s in scores]),
            tasks=np.array([s.task for s in scores]),
            samples=np.array([s.sample for s in scores]),
            reference=np.stack([s.reference for s in scores]),
            generated=np.stack([s.embedding for s in scores]),
        )
    with atomic_file(out / "world_clips.jsonl") as tmp:
        lines = (
            s.record(flat[j // samples].text, seed + j // samples) for j, s in enumerate(scores)
        )
        tmp.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return report


def judge_input(wav: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    """A generated `(C, S)` waveform as mono float32 `(S',)` at the judge's rate."""
    from audiox_turbo.eval.features import mono_at_rate

    return mono_at_rate([wav], sample_rate, target)[0]
