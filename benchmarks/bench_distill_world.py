"""World distillation benchmark: does the 4-step student beat its teacher's own 4 steps?

A recipe (`audiox-turbo recipe`, src/audiox_turbo/recipe.py: `demo`, the shipped model's
chain on the real-source world, or `distill-world`, a small synthetic one) trains, once, the
world, codec and teacher (cached under --cache, the recipe's run folder: every stage is skipped
when done and resumed when interrupted, so `make model`'s runs/demo is reused as it is) and
distils the teacher into a student per --tag (`recipe`: the recipe's own student). The script
then scores, with the shipped world judge on a balanced prompt set (the same number of text
prompts for every class of the world's test split), each prompt generated `--samples` times
(3: one sampling seed moves FD by ±10 %, the teacher's too):

- teacher, `--teacher-steps` Euler steps with CFG (the multi-step reference),
- teacher, 4 Euler steps with CFG,
- student, 4 steps (its own sampler).

It prints the table (class accuracy, FD, tempo, onset error, largest class share) and writes
`benchmarks/results/distill_world.json` (`distill_world_TAG.json` for another --tag): the
rows, stage times, a `gates` object (the student beats teacher@4 on class accuracy and FD, is
within 10 % of the multi-step FD, and no class takes more than twice its fair share of the
student's outputs; that last one also against each class's share of the judge's readings of
the prompts' real clips, which the fair-share version does not allow for: the judge reads
8.5 % of those clips as "drum kit" where the fair share is 2.3 %), `real_clips` (the judge on
those clips: the ceiling), and how sure the FD gates are, by a paired bootstrap over the
prompts (FD in the judge's 128-dim space from ~130 clips moves by ±25–35 between prompt
resamples, all of a prompt's samples together): `fd_vs_teacher_4` for each row,
`student_fd_vs_1.1x_teacher_multi` for the 10 % gate.

    python benchmarks/bench_distill_world.py [--recipe demo] [--cache runs/demo] [--tag NAME]
        [--distill-steps N] [--distill-seed N] [--distill-precision P]
        [--distill-settings JSON] [--samples N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.config import to_dict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distill_world.json"
SEED = 0


def bench_recipe(args: argparse.Namespace) -> Any:
    """The chosen recipe (audiox_turbo/recipe.py) with this run's stage budgets (None: the
    recipe's) and distillation settings (merged over the recipe's)."""
    import dataclasses

    from audiox_turbo.config import from_dict
    from audiox_turbo.recipe import recipe
    from audiox_turbo.train.run_config import DistillConfig

    base = recipe(args.recipe)

    def budget(run: Any, **train: Any) -> Any:
        given = {k: v for k, v in train.items() if v is not None}
        return dataclasses.replace(run, train=dataclasses.replace(run.train, **given))

    settings = to_dict(base.distill.distill) | json.loads(args.distill_settings)
    distill = budget(
        base.distill,
        max_steps=args.distill_steps,
        batch_size=args.distill_batch,
        seed=args.distill_seed,
        precision=args.distill_precision,
    )
    return dataclasses.replace(
        base,
        codec=budget(base.codec, max_steps=args.codec_steps),
        teacher=budget(base.teacher, max_steps=args.teacher_train_steps),
        distill=dataclasses.replace(distill, distill=from_dict(DistillConfig, settings)),
    )


def student_folder(tag: str) -> str:
    """The run folder of a tag's student: `recipe` is the recipe's own distillation stage."""
    return "distill" if tag == "recipe" else f"distill_{tag}"


def build(cache: Path, config: Any, tag: str) -> dict[str, Path]:
    """World, codec, latents, teacher and this tag's student under `cache` (each stage
    skipped when done, resumed when interrupted); the student is the recipe's export (the one
    chosen on the validation split, where the recipe has one)."""
    from audiox_turbo.recipe import Recipe

    recipe = Recipe(config, cache, student=student_folder(tag))
    recipe.run(until="export")
    teacher = "finetune" if config.finetune.train.max_steps > 0 else "teacher"
    return {
        "world": cache / "world",
        "teacher": cache / teacher / "model",
        "student": recipe.export_dir(),
    }


def balanced_prompts(world: Path, per_class: int) -> dict[str, list[Any]]:
    """`per_class` text prompts (T2A / T2M) for every class with enough test clips."""
    from audiox_turbo.data.manifest import read_manifest
    from audiox_turbo.data.world.judge_vocabulary import judge_class
    from audiox_turbo.eval.world_benchmark import make_prompt

    by_class: dict[str, list[Any]] = {}
    for record in read_manifest(world / "test.jsonl"):
        if record.captions:  # clips with a video too: their text prompts are text-only
            by_class.setdefault(judge_class(record.labels), []).append(record)
    prompts: dict[str, list[Any]] = {"T2A": [], "T2M": []}
    for records in by_class.values():
        if len(records) >= per_class:
            for record in records[:per_class]:
                task = "T2M" if record.labels["category"] == "music" else "T2A"
                prompts[task].append(make_prompt(task, record, world))
    return prompts


def shipped_judge_id() -> str:
    """The first 12 hex digits of the shipped judge's weights' SHA-256."""
    from audiox_turbo.eval.judge import shipped_judge_dir

    weights = (shipped_judge_dir() / "judge.safetensors").read_bytes()
    return hashlib.sha256(weights).hexdigest()[:12]


def score(
    paths: dict[str, Path], cache: Path, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], int, list[Path]]:
    """The three rows (teacher multi-step, teacher 4 steps, student 4 steps; all prompts), the
    number of classes prompted and the three folders of generations."""
    from audiox_turbo.data.world.judge_vocabulary import judge_class
    from audiox_turbo.eval.judge import load_judge_embedder
    from audiox_turbo.eval.world_benchmark import run_world_benchmark
    from audiox_turbo.loader import load

    judge = load_judge_embedder(None)
    prompts = balanced_prompts(paths["world"], args.per_class)
    classes = {judge_class(p.record.labels) for task in prompts.values() for p in task}
    multi = f"teacher {args.teacher_steps} Euler, CFG {args.cfg:g}"
    runs = [
        (multi, paths["teacher"], "euler", args.teacher_steps, args.cfg),
        (f"teacher 4 Euler, CFG {args.cfg:g}", paths["teacher"], "euler", 4, args.cfg),
        ("student 4 steps", paths["student"], "student", 4, 1.0),
    ]
    rows, folders = [], []
    for label, model, method, steps, cfg in runs:
        # the teacher's rows depend only on the cached teacher: scored once, then reused
        # cached teacher rows are per judge: a retrained judge rescores them
        prompt_set = f"per-class-{args.per_class}" + (
            f"_samples-{args.samples}" if args.samples > 1 else ""
        )
        teacher_rows = f"teacher_judge-{shipped_judge_id()}_{prompt_set}"
        folder = teacher_rows if method == "euler" else f"{args.tag}_{prompt_set}"
        out = cache / "scores" / folder / label.replace(" ", "_").replace(",", "")
        folders.append(out)
        if method == "euler" and (out / "row.json").is_file():
            row = json.loads((out / "row.json").read_text())
            if "beep_tones" not in row:  # scored before the tone histogram existed
                tones = beep_tones(load(model, device="cpu"), method, steps, cfg, args.tone_seeds)
                row["beep_tones"] = tones
                write_json_atomic(out / "row.json", row)
            rows.append(row)
            print(f"[score] {label}: cached", flush=True)
            continue
        start = time.perf_counter()
        pipe = load(model, device="cpu")
        report = run_world_benchmark(
            pipe, prompts, out, steps, cfg, SEED, judge, method=method, samples=args.samples
        )
        row = next(r for r in report["rows"] if r["task"] == "all")
        tones = beep_tones(pipe, method, steps, cfg, args.tone_seeds)
        rows.append(
            {"model": label, **row, "beep_tones": tones, "seconds": time.perf_counter() - start}
        )
        write_json_atomic(out / "row.json", rows[-1])
        print(f"[score] {label}: {json.dumps(row)}", flush=True)
    return rows, len(classes), folders


@dataclass
class JudgeReadings:
    """The judge on the balanced set, in the order of the prompts: the real test clips'
    classes, the real clips' embeddings (N, 128) and predicted classes, and each folder's
    embeddings (N, samples, 128) and predicted classes (N · samples, a prompt's consecutive)."""

    real_labels: list[str]
    real_embeddings: np.ndarray
    real_classes: list[str]
    embeddings: list[np.ndarray]
    classes: list[list[str]]


def judge_readings(folders: list[Path]) -> JudgeReadings:
    """The judge's readings that each folder's world benchmark saved (the same prompts in the
    same order in every folder, each with its number of samples)."""
    from audiox_turbo.eval.world_benchmark import EMBEDDINGS_FILE

    def read(folder: Path) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
        clips = [json.loads(line) for line in (folder / "world_clips.jsonl").open()]
        with np.load(folder / EMBEDDINGS_FILE) as saved:
            return clips, saved["reference"], saved["generated"]

    first, reference, _ = read(folders[0])
    ids = list(dict.fromkeys(c["id"] for c in first))
    real = [c for c in first if c.get("sample", 0) == 0]
    embeddings, classes = [], []
    for folder in folders:
        clips, _, generated = read(folder)
        if list(dict.fromkeys(c["id"] for c in clips)) != ids:
            raise SystemExit(f"{folder}: scored on other prompts than {folders[0]}")
        embeddings.append(generated.reshape(len(ids), -1, generated.shape[-1]))
        classes.append([c["predicted_class"] for c in clips])
    return JudgeReadings(
        [c["expected_class"] for c in real],
        reference[[c.get("sample", 0) == 0 for c in first]],
        [c["reference_class"] for c in real],
        embeddings,
        classes,
    )


def beep_tones(pipe: Any, method: str, steps: int, cfg: float, seeds: int) -> dict[str, int]:
    """Mode coverage: how many of `seeds` 2-s generations of "Beeps." (the world's alarm,
    whose tone is one of BEEP_TONES_HZ, equally likely, when the caption names none) come out
    at each tone (within 4 %) or at none of them ("other")."""
    from audiox_turbo.data.world.effects import BEEP_TONES_HZ
    from audiox_turbo.data.world.measure import dominant_frequency

    counts = {f"{hz:.0f}": 0 for hz in BEEP_TONES_HZ} | {"other": 0}
    for seed in range(seeds):
        result = pipe("Beeps.", duration=2.0, steps=steps, cfg=cfg, seed=seed, method=method)
        hz = dominant_frequency(result.waveforms[0][0].numpy(), result.sample_rate) or 0.0
        near = min(BEEP_TONES_HZ, key=lambda tone: abs(tone - hz))
        counts[f"{near:.0f}" if abs(near - hz) <= 0.04 * near else "other"] += 1
    return counts


def tone_distance(a: dict[str, int], b: dict[str, int]) -> float:
    """Total variation distance between two beep-tone histograms (0: the same modes)."""
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in a)


def resampled_fds(readings: JudgeReadings, draws: int = 300) -> list[np.ndarray]:
    """Per model: its FD on each of `draws` paired resamples of the prompts (the same prompts
    for every model, drawn with replacement)."""
    from audiox_turbo.eval.metrics import paired_resampled_fds

    return list(paired_resampled_fds(readings.real_embeddings, readings.embeddings, draws, SEED))


def spread(diff: np.ndarray) -> dict[str, float]:
    """5th and 95th percentiles of paired FD differences and the share of them below 0."""
    return {
        "p05": float(np.percentile(diff, 5)),
        "p95": float(np.percentile(diff, 95)),
        "share_below_0": float((diff < 0).mean()),
    }


def fd_versus_teacher_4(rows: list[dict[str, Any]], fds: list[np.ndarray]) -> dict[str, Any]:
    """Per row: FD − teacher@4's FD over the paired resamples."""
    return {row["model"]: spread(fd - fds[1]) for row, fd in zip(rows, fds, strict=True)}


def fd_versus_teacher_multi(fds: list[np.ndarray]) -> dict[str, float]:
    """The student's FD − 1.1 × teacher@multi-step's FD over the paired resamples (below 0:
    within the 10 % gate on that resample)."""
    return spread(fds[2] - 1.1 * fds[0])


def class_shares(classes: list[str]) -> dict[str, float]:
    """Each predicted class's share of the outputs."""
    return {c: n / len(classes) for c, n in Counter(classes).most_common()}


def real_clips(readings: JudgeReadings) -> dict[str, Any]:
    """The judge on the prompts' own test clips: what a generator that reproduced them would
    score (class accuracy, largest class share and its class)."""
    shares = class_shares(readings.real_classes)
    top = next(iter(shares))
    pairs = zip(readings.real_labels, readings.real_classes, strict=True)
    correct = [label == heard for label, heard in pairs]
    return {
        "class_accuracy": sum(correct) / len(correct),
        "largest_class_share": shares[top],
        "largest_class": top,
    }


def share_over_real(student: list[str], real: list[str], fair: float) -> float:
    """The largest ratio, over classes, of a class's share of the student's outputs to its
    share of the judge's readings of the real clips (at least the fair share)."""
    ours, theirs = class_shares(student), class_shares(real)
    return max(share / max(theirs.get(c, 0.0), fair) for c, share in ours.items())


def gates(
    rows: list[dict[str, Any]], classes: int, readings: JudgeReadings
) -> dict[str, dict[str, Any]]:
    """The issue's gates with their values, thresholds and verdicts; the class-share gate
    twice: against the fair share (as the issue words it, which the judge's readings of the
    real clips themselves can fail) and against each class's share of those readings. The
    class-share gates also carry the multi-step teacher's value (`teacher_multi`): a student
    that matched its teacher's outputs would score that."""
    multi, four, student = rows
    fair = 1.0 / classes
    over_real = share_over_real(readings.classes[2], readings.real_classes, fair)
    teacher = {
        "largest_class_share_at_most_twice_fair": multi["largest_class_share"],
        "no_class_over_twice_its_real_share": share_over_real(
            readings.classes[0], readings.real_classes, fair
        ),
    }
    checks = {
        "student_class_acc_beats_teacher_4": (
            student["class_accuracy"],
            four["class_accuracy"],
            student["class_accuracy"] > four["class_accuracy"],
        ),
        "student_fd_beats_teacher_4": (student["fd"], four["fd"], student["fd"] < four["fd"]),
        "student_fd_within_10pct_of_teacher_multi": (
            student["fd"],
            1.1 * multi["fd"],
            student["fd"] <= 1.1 * multi["fd"],
        ),
        "largest_class_share_at_most_twice_fair": (
            student["largest_class_share"],
            2 * fair,
            student["largest_class_share"] <= 2 * fair,
        ),
        "no_class_over_twice_its_real_share": (over_real, 2.0, over_real <= 2.0),
    }
    return {
        k: {"value": v, "threshold": t, "passed": bool(p)}
        | ({"teacher_multi": teacher[k]} if k in teacher else {})
        for k, (v, t, p) in checks.items()
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | class acc | FD (judge) | tempo ≤ 4 % | onset err s | top class share | tones |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r.get(k) for k in ("class_accuracy", "fd", "tempo_accuracy", "onset_error_s")]
        cells.append(r.get("largest_class_share"))
        text = ["–" if v is None else f"{v:.3g}" for v in cells]
        tones = r.get("beep_tones", {})
        text.append(" ".join(f"{k}:{n}" for k, n in tones.items() if n) or "–")
        lines.append(f"| {r['model']} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="demo", help="demo or distill-world (or a JSON).")
    parser.add_argument("--cache", type=Path, help="The recipe's run folder (default runs/NAME).")
    parser.add_argument("--codec-steps", type=int, help="Default: the recipe's.")
    parser.add_argument("--teacher-train-steps", type=int, help="Default: the recipe's.")
    parser.add_argument("--distill-steps", type=int, help="Default: the recipe's.")
    parser.add_argument("--distill-batch", type=int, help="Default: the recipe's.")
    parser.add_argument("--distill-seed", type=int, help="Training seed (default: the recipe's).")
    parser.add_argument(
        "--distill-precision",
        choices=("fp32", "bf16"),
        help="The distillation's train.precision (default: the recipe's).",
    )
    parser.add_argument(
        "--distill-settings", default="{}", help="JSON of DistillConfig fields over the recipe's"
    )
    parser.add_argument(
        "--tag", default="recipe", help="Names this distillation (recipe: the recipe's own)."
    )
    parser.add_argument("--per-class", type=int, default=3, help="Prompts per class.")
    parser.add_argument(
        "--samples", type=int, default=3, help="Generations per prompt (seeds of one batch)."
    )
    parser.add_argument("--tone-seeds", type=int, default=20, help="Beeps generated per model.")
    parser.add_argument("--cfg", type=float, help="Teacher CFG when scoring (recipe's).")
    parser.add_argument("--teacher-steps", type=int, help="Multi-step reference (recipe's).")
    args = parser.parse_args()
    config = bench_recipe(args)
    args.cfg = config.benchmark.teacher_cfg if args.cfg is None else args.cfg
    args.teacher_steps = args.teacher_steps or config.benchmark.teacher_steps
    cache = args.cache or ROOT / "runs" / config.name
    paths = build(cache, config, args.tag)
    start = time.perf_counter()
    rows, classes, folders = score(paths, cache, args)
    readings = judge_readings(folders)
    fds = resampled_fds(readings)
    versus_four = fd_versus_teacher_4(rows, fds)
    within_ten = fd_versus_teacher_multi(fds)
    real = real_clips(readings)
    recorded = cache / "stage_seconds.json"  # written by the recipe as its stages run
    times = json.loads(recorded.read_text()) if recorded.is_file() else {}
    times["score"] = time.perf_counter() - start
    result = {
        "machine": "2-core CPU",
        "recipe": config.name,
        "tag": args.tag,
        "judge": shipped_judge_id(),
        "teacher_train_steps": config.teacher.train.max_steps,
        "finetune_steps": config.finetune.train.max_steps,
        "distill_steps": config.distill.train.max_steps,
        "distill_batch": config.distill.train.batch_size,
        "distill_seed": config.distill.train.seed,
        "distill_precision": config.distill.train.precision,
        "distill_settings": to_dict(config.distill.distill),
        "prompts_per_class": args.per_class,
        "samples_per_prompt": args.samples,
        "classes_prompted": classes,
        "stage_seconds": times,
        "rows": rows,
        "real_clips": real,
        "beep_tones_tv_to_multi": {
            r["model"]: tone_distance(r["beep_tones"], rows[0]["beep_tones"]) for r in rows
        },
        "gates": gates(rows, classes, readings),
        "fd_vs_teacher_4": versus_four,
        "student_fd_vs_1.1x_teacher_multi": within_ten,
    }
    print(table(rows))
    print(f"the judge on the real clips: {json.dumps(real)}")
    print(json.dumps(result["gates"], indent=2))
    for label, d in [
        *((f"FD − teacher@4 FD, {row}", d) for row, d in versus_four.items()),
        ("student FD − 1.1 × teacher@multi FD", within_ten),
    ]:
        print(
            f"{label}: 90 % of prompt resamples in "
            f"[{d['p05']:+.0f}, {d['p95']:+.0f}], below 0 in {100 * d['share_below_0']:.0f} %"
        )
    path = RESULTS if args.tag == "recipe" else RESULTS.with_name(f"distill_world_{args.tag}.json")
    write_json_atomic(path, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
