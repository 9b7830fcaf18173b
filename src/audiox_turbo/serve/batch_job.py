"""Batch jobs: every line of a prompts.jsonl (the API's fields + name, video, audio) made into
a file in an output folder, in batches, with a manifest that lets a killed job resume without
redoing finished items. A bad line is reported with its line number; the rest are made."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiox_turbo.atomic import append_line, check_writable_dir
from audiox_turbo.errors import AudioXError
from audiox_turbo.interface import GenerationOutput, GenerationRequest, Pipeline
from audiox_turbo.serve.schema import JobLine, RequestError, parse_options

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class JobItem:
    """One valid line: where it came from, what to generate and where to write it."""

    line: int
    name: str
    request: GenerationRequest
    key: Hashable | None
    path: Path


@dataclass(frozen=True)
class JobPlan:
    """The items of a prompts file, the problems of its bad lines, and what is already made."""

    prompts: Path
    items: list[JobItem]
    problems: list[str]
    done: set[str]

    @property
    def todo(self) -> list[JobItem]:
        return [item for item in self.items if item.name not in self.done]


def _resolve(folder: Path, path: str | None, field: str) -> str | None:
    if path is None:
        return None
    resolved = Path(path) if Path(path).is_absolute() else folder / path
    if not resolved.is_file():
        raise RequestError(field, f"{resolved}: file not found")
    return str(resolved)


def _item(pipe: Pipeline, prompts: Path, out_dir: Path, line: int, text: str, seed: int) -> JobItem:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(None, f"invalid JSON ({e.msg})") from None
    options: JobLine = parse_options(JobLine, data)
    video = _resolve(prompts.parent, options.video, "video")
    audio = _resolve(prompts.parent, options.audio, "audio")
    if options.text is None and video is None and audio is None:
        raise RequestError(None, "give at least one of text, video or audio")
    fmt = options.output_format(video is not None)
    request = options.request(video, audio)
    if request.seed is None:
        request = GenerationRequest(**{**request.kwargs(), "seed": seed + line})
    try:
        key = pipe.batch_key(request)
    except AudioXError as e:
        raise RequestError(None, str(e)) from None
    name = options.name or f"{line:05d}"
    return JobItem(line, name, request, key, out_dir / f"{name}.{fmt}")


def finished_names(out_dir: Path) -> set[str]:
    """Names the manifest records whose file exists (a torn last line is ignored)."""
    manifest = out_dir / MANIFEST
    done = set()
    if manifest.is_file():
        for text in manifest.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                continue
            if (out_dir / record["file"]).is_file():
                done.add(record["name"])
    return done


def plan_job(pipe: Pipeline, prompts: str | Path, out_dir: str | Path, seed: int = 0) -> JobPlan:
    """Read and check every line (unseeded lines get seed + line number); the output folder is
    created and must be writable (AudioXError otherwise)."""
    prompts, out_dir = Path(prompts), check_writable_dir(out_dir)
    try:
        lines = prompts.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AudioXError(f"{prompts}: cannot read the prompts file ({e})") from None
    items: list[JobItem] = []
    problems: list[str] = []
    names: set[str] = set()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            item = _item(pipe, prompts, out_dir, number, text, seed)
            if item.name in names:
                raise RequestError("name", f"{item.name!r} is used by an earlier line")
        except RequestError as e:
            problems.append(f"{prompts}:{number}: {e}")
            continue
        names.add(item.name)
        items.append(item)
    return JobPlan(prompts, items, problems, finished_names(out_dir))


def _write(item: JobItem, out: GenerationOutput) -> None:
    from audiox_turbo.io.audio import save_audio
    from audiox_turbo.io.video import mux_audio_onto_video

    outputs = list(out.waveforms)
    paths = [item.path] + [
        item.path.with_name(f"{item.path.stem}_{i}{item.path.suffix}")
        for i in range(1, len(outputs))
    ]
    for path, wav in zip(paths, outputs, strict=True):
        if path.suffix == ".mp4":
            mux_audio_onto_video(
                str(item.request.video), wav, out.sample_rate, path, start=item.request.video_start
            )
        else:
            save_audio(path, wav, out.sample_rate)


def _record(item: JobItem, out: GenerationOutput, seconds: float, batch: int) -> dict[str, Any]:
    request = item.request
    return {
        "line": item.line,
        "name": item.name,
        "text": request.text,
        "video": request.video,
        "audio": request.audio,
        "seed": out.seed,
        "file": item.path.name,
        "outputs": out.waveforms.shape[0],
        "duration": out.duration,
        "nfe": out.nfe,
        "seconds": round(seconds, 4),
        "batch_size": batch,
    }


def run_job(
    pipe: Pipeline,
    plan: JobPlan,
    out_dir: str | Path,
    batch_size: int = 8,
    on_done: Callable[[JobItem], None] | None = None,
) -> list[str]:
    """Make every unfinished item, compatible ones `batch_size` at a time, appending each to
    the manifest once its file is written; returns the problems of items that failed."""
    manifest = Path(out_dir) / MANIFEST
    groups: dict[Hashable, list[JobItem]] = {}
    for item in plan.todo:
        groups.setdefault(item.key if item.key is not None else id(item), []).append(item)
    batches = [
        group[i : i + max(1, batch_size)]
        for group in groups.values()
        for i in range(0, len(group), max(1, batch_size))
    ]
    problems: list[str] = []
    while batches:
        batch = batches.pop(0)
        start = time.perf_counter()
        try:
            outputs = pipe.generate_batch([item.request for item in batch])
        except AudioXError as e:
            if len(batch) > 1:  # find the bad item: run each alone
                batches[:0] = [[item] for item in batch]
            else:
                problems.append(f"{plan.prompts}:{batch[0].line}: {e}")
            continue
        seconds = time.perf_counter() - start
        for item, out in zip(batch, outputs, strict=True):
            _write(item, out)
            append_line(manifest, json.dumps(_record(item, out, seconds, len(batch))))
            if on_done is not None:
                on_done(item)
    return problems
