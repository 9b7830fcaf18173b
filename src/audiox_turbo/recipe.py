"""A whole model from nothing: world → codec → latents → teacher (→ fine-tune) → student
→ export (the student chosen on the world's validation split) → benchmark.

Each stage is one `audiox-turbo` command in a child process (the commands a user would type,
so a stage's memory is freed when it ends), skipped when its output exists and resumed
(`--resume`) when a previous run was interrupted. A recipe is one frozen `RecipeConfig`,
written as `recipe.json` (`recipe_STUDENT.json` for another student) in the output folder;
training curves go to `curves/<stage>.png`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiox_turbo.atomic import write_json_atomic
from audiox_turbo.config import ModelConfig, from_dict, preset, to_dict
from audiox_turbo.errors import AudioXError
from audiox_turbo.eval.metrics import paired_resampled_fds
from audiox_turbo.eval.world_benchmark import EMBEDDINGS_FILE
from audiox_turbo.model_dir import TRAINING_FILE
from audiox_turbo.train.checkpoint import step_dir_name
from audiox_turbo.train.run_config import RunConfig, TrainConfig

STAGES = (
    "world",
    "codec",
    "latents",
    "decoder",
    "teacher",
    "finetune",
    "distill",
    "export",
    "benchmark",
)


@dataclass(frozen=True)
class WorldSpec:
    """The embedded world the recipe trains on (`audiox-turbo data world`); `val_clips` of a
    validation split choose the student (`SelectionSpec`), the test split scores it."""

    train_clips: int = 800
    test_clips: int = 240
    val_clips: int = 0
    duration: float = 4.0
    sources: str = "auto"
    video_fraction: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class BenchmarkSpec:
    """`audiox-turbo benchmark world` of the teacher (multi-step, CFG) and of the student, on
    `tasks` (empty: every task)."""

    clips_per_task: int = 8
    tasks: tuple[str, ...] = ()
    teacher_steps: int = 50
    teacher_cfg: float = 3.0


@dataclass(frozen=True)
class SelectionSpec:
    """The export stage's choice of student, when the world has a validation split
    (`world.val_clips`) and the distillation exports along the way
    (`distill.train.export_every`): every export from step `from_step` on and the final model
    generate the benchmark's tasks on the validation split (its clips per task, the student's
    own sampling), and the latest one wins that the candidate of lowest Fréchet distance (in
    the judge's embedding) does not beat on at least `confidence` of `draws` paired resamples
    of the validation prompts: a later student is kept unless an earlier one is better beyond
    the noise of the split. Otherwise the final model is exported."""

    from_step: int = 0
    confidence: float = 0.9
    draws: int = 300

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence <= 1.0:
            raise ValueError(f"selection.confidence must be in (0, 1], got {self.confidence}")
        if self.draws < 1:
            raise ValueError(f"selection.draws must be ≥ 1, got {self.draws}")


@dataclass(frozen=True)
class RecipeConfig:
    """Architecture (a preset or a model config) and the settings of every stage. `decoder`:
    more codec steps with the encoder frozen (`codec.freeze_encoder`), after the latents are
    cached — the latent space is fixed, so the teacher's codec gets a better decoder at no
    cost to the cache; `decoder.train.max_steps` 0 skips the stage. `finetune`: more teacher
    steps from the trained teacher, on longer crops (whole clips): the teacher learns cheaply
    on short crops and is then taught the length it generates; the student distils the
    fine-tuned teacher, and `finetune.train.max_steps` 0 skips the stage."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=lambda: preset("tiny"))
    world: WorldSpec = field(default_factory=WorldSpec)
    codec: RunConfig = field(default_factory=RunConfig)
    decoder: RunConfig = field(default_factory=lambda: RunConfig(train=TrainConfig(max_steps=0)))
    teacher: RunConfig = field(default_factory=RunConfig)
    finetune: RunConfig = field(default_factory=lambda: RunConfig(train=TrainConfig(max_steps=0)))
    distill: RunConfig = field(default_factory=RunConfig)
    benchmark: BenchmarkSpec = field(default_factory=BenchmarkSpec)
    selection: SelectionSpec = field(default_factory=SelectionSpec)


def _quick(**train: Any) -> TrainConfig:
    base = TrainConfig(warmup_steps=0, schedule="constant", num_workers=0, sample_every=0)
    return dataclasses.replace(base, **train)


def tiny_recipe() -> RecipeConfig:
    """Every stage at toy size (seconds on a CPU): what the tests run end to end; its model
    reads the beat grid (`conditioning/beat.py`), and the student is chosen on a validation
    split between its two steps, so the chain runs with both too."""
    train = _quick(batch_size=2, crop_seconds=0.5, max_steps=2, log_every=1, ema_warmup=0)
    tiny = preset("tiny")
    return RecipeConfig(
        name="tiny",
        model=dataclasses.replace(
            tiny, conditioning=dataclasses.replace(tiny.conditioning, beat_grid=True)
        ),
        world=WorldSpec(
            train_clips=8, test_clips=8, val_clips=4, duration=1.0, sources="synthetic"
        ),
        codec=RunConfig(train=train),
        decoder=RunConfig(train=train),
        teacher=RunConfig(train=train),
        finetune=RunConfig(train=dataclasses.replace(train, crop_seconds=1.0)),
        distill=RunConfig(train=dataclasses.replace(train, export_every=1)),
        benchmark=BenchmarkSpec(clips_per_task=1, teacher_steps=2),
    )


def _distill_run(train: TrainConfig, teacher: dict[str, Any], **settings: Any) -> RunConfig:
    """The distillation settings the world benchmark chose (issue 12, `docs/benchmarks.md`):
    teacher CFG 3, two critic updates per generator update, critic lr 2e-4, generator lr 1e-4,
    DMD's regression anchor at 0.25 on teacher ODE pairs, at every student step, and the
    student's last two steps refined toward the teacher's guided ODE from its own states
    (weight 5, a 12-step grid); `settings` override them."""
    distill = {
        "teacher_cfg": 3.0,
        "critic_updates": 2,
        "critic_lr": 2e-4,
        "generator_lr": 1e-4,
        "regression_weight": 0.25,
        "regression_trajectory": True,
        "refine_weight": 5.0,
        "refine_steps": 2,
        "refine_teacher_steps": 12,
        **settings,
    }
    return from_dict(RunConfig, {"train": to_dict(train), "teacher": teacher, "distill": distill})


def distill_world_recipe() -> RecipeConfig:
    """The world distillation benchmark's chain (benchmarks/bench_distill_world.py): the tiny
    preset with a 16-channel codec and a 128 × 4 denoiser on 800 synthetic 4 s clips."""
    tiny = preset("tiny")
    model = dataclasses.replace(
        tiny,
        name="distill_world",
        codec=dataclasses.replace(tiny.codec, channels=16),
        conditioning=dataclasses.replace(tiny.conditioning, dim=64, heads=4),
        denoiser=dataclasses.replace(tiny.denoiser, dim=128, depth=4, heads=4),
        sampler=dataclasses.replace(tiny.sampler, steps=25, cfg=3.0),
    )
    common = dict(weight_decay=0.01, crop_seconds=2.0, keep_checkpoints=2, log_every=50)
    codec = _quick(**common, batch_size=8, lr=1e-3, max_steps=800, checkpoint_every=200)
    codec = dataclasses.replace(codec, ema_decay=0.99, ema_warmup=100)
    teacher = _quick(**common, batch_size=16, lr=1e-3, max_steps=2000, checkpoint_every=500)
    teacher = dataclasses.replace(teacher, warmup_steps=100, ema_decay=0.995, ema_warmup=100)
    distill = _quick(**common, batch_size=8, lr=1e-4, max_steps=600, checkpoint_every=200)
    distill = dataclasses.replace(distill, ema_decay=0.99, ema_warmup=50)
    no_prompts = {"validation_prompts": ()}
    return RecipeConfig(
        name="distill-world",
        model=model,
        world=WorldSpec(train_clips=800, test_clips=480, duration=4.0, sources="synthetic"),
        codec=from_dict(
            RunConfig, {"train": to_dict(codec), "codec": {"adversarial_start": 10**9}}
        ),
        teacher=from_dict(RunConfig, {"train": to_dict(teacher), "teacher": no_prompts}),
        distill=_distill_run(distill, no_prompts),
        benchmark=BenchmarkSpec(clips_per_task=8, teacher_steps=25, teacher_cfg=3.0),
    )


def demo_recipe() -> RecipeConfig:
    """The shipped default model (`demo` preset) on the real-source world the judge was trained
    on (same seed and size), sized for a 2-core CPU; `docs/default_model.md` records its run.
    Its codec is the log-mel codec: the codec stage measures band statistics (seconds) and
    there is no decoder stage. The student is chosen among the distillation's exports from
    step 600 on (every 150 steps) on a 400-clip validation split."""
    common = dict(weight_decay=0.01, keep_checkpoints=2, log_every=50, checkpoint_every=500)
    cosine = dict(schedule="cosine", ema_warmup=200)
    codec = _quick(batch_size=8, crop_seconds=2.0)
    teacher = _quick(**common, **cosine, batch_size=16, crop_seconds=2.0, lr=5e-4)
    teacher = dataclasses.replace(teacher, max_steps=6000, warmup_steps=200, ema_decay=0.998)
    # whole 5 s clips, from the trained teacher (docs/default_model.md: FD 172 -> 127; the
    # shipped chain's 5 s steps, 1800 + 1800 with the grid, as one cosine)
    finetune = dataclasses.replace(
        teacher, crop_seconds=5.0, lr=2.5e-4, warmup_steps=100, max_steps=3600, ema_warmup=0, seed=1
    )
    distill = _quick(**common, batch_size=8, crop_seconds=5.0, lr=1e-4, max_steps=1350)
    distill = dataclasses.replace(
        distill, checkpoint_every=150, export_every=150, ema_decay=0.99, ema_warmup=50
    )
    text_and_video = {
        "tasks": ("T2A", "T2M", "V2A", "V2M", "TV2A", "TV2M"),
        "validation_prompts": (),
    }
    return RecipeConfig(
        name="demo",
        model=preset("demo"),
        world=WorldSpec(
            train_clips=9000,
            test_clips=400,
            val_clips=400,
            duration=5.0,
            sources="real",
            video_fraction=0.2,
        ),
        codec=from_dict(RunConfig, {"train": to_dict(codec), "codec": {"statistics_clips": 1024}}),
        teacher=from_dict(RunConfig, {"train": to_dict(teacher), "teacher": text_and_video}),
        finetune=from_dict(RunConfig, {"train": to_dict(finetune), "teacher": text_and_video}),
        # the GAN term at 5e-3, DMD2's order (docs/default_model.md: its measured run)
        distill=_distill_run(distill, text_and_video, gan_weight=5e-3),
        benchmark=BenchmarkSpec(
            clips_per_task=32, tasks=("T2A", "T2M", "V2A"), teacher_steps=50, teacher_cfg=3.0
        ),
        selection=SelectionSpec(from_step=600),
    )


def demo_fast_recipe() -> RecipeConfig:
    """The `demo` recipe on a 2-core CPU's budget (`docs/default_model.md`): teacher 5000 and
    fine-tune 1500 steps, 900 distillation steps with a pool of 16 teacher ODEs, all under
    bf16 autocast (teacher: the same loss curve as fp32, 1.23x faster per step; distillation:
    balanced FD 132.7 as fp32's at the same seed, 1.30x faster), the frozen teacher in bf16
    and the discriminator on half the batch in the critic phase (`docs/benchmarks.md`, issue
    12: what each costs and keeps)."""
    base = demo_recipe()

    def shortened(run: RunConfig, max_steps: int) -> RunConfig:
        train = dataclasses.replace(run.train, max_steps=max_steps, precision="bf16")
        return dataclasses.replace(run, train=train)

    distill = shortened(base.distill, 900)
    settings = dataclasses.replace(
        distill.distill, regression_pool=16, teacher_bf16=True, gan_batch_fraction=0.5
    )
    return dataclasses.replace(
        base,
        name="demo-fast",
        teacher=shortened(base.teacher, 5000),
        finetune=shortened(base.finetune, 1500),
        distill=dataclasses.replace(distill, distill=settings),
    )


RECIPES: dict[str, Callable[[], RecipeConfig]] = {
    "tiny": tiny_recipe,
    "distill-world": distill_world_recipe,
    "demo": demo_recipe,
    "demo-fast": demo_fast_recipe,
}


def recipe(name_or_path: str) -> RecipeConfig:
    """A named recipe or a recipe JSON file; anything else is a one-line AudioXError."""
    if name_or_path in RECIPES:
        return RECIPES[name_or_path]()
    path = Path(name_or_path)
    if not path.is_file():
        raise AudioXError(
            f"recipe {name_or_path!r}: not a file nor one of {', '.join(sorted(RECIPES))}"
        )
    try:
        return from_dict(RecipeConfig, json.loads(path.read_text()))
    except (ValueError, json.JSONDecodeError) as e:
        raise AudioXError(f"{path}: {e}") from None


@dataclass(frozen=True)
class Stage:
    """Commands of the recipe, then an optional step in this process: done when `output`
    exists."""

    name: str
    output: Path
    commands: tuple[tuple[str, ...], ...]
    then: Callable[[], None] | None = None


class Recipe:
    """The stages of `config` under `out` (see the module docstring); `student` names the
    distillation's run folder, so that several students of one teacher can share a recipe."""

    def __init__(
        self, config: RecipeConfig, out: Path, device: str = "cpu", student: str = "distill"
    ) -> None:
        self.config, self.out, self.device, self.student = config, Path(out), device, student

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def own_name(self, stem: str) -> str:
        """`STEM.json` for the recipe's own student, else `STEM_STUDENT.json`: a second
        student's config (`recipe`) and benchmark summary (`summary`) never overwrite, or
        stand in for, the recipe's."""
        return f"{stem}.json" if self.student == "distill" else f"{stem}_{self.student}.json"

    def time_key(self, stage: str) -> str:
        """A stage's key in stage_seconds.json: the student's own stages (distill, export,
        benchmark) carry its folder's name when it is not the recipe's own, so students sharing
        a folder keep their times apart."""
        if stage == "distill":
            return self.student
        if stage in ("export", "benchmark") and self.student != "distill":
            return f"{self.student}_{stage}"
        return stage

    def summary_path(self) -> Path:
        """The benchmark stage's summary (its done-marker) for this student."""
        return self.path("benchmark", self.own_name("summary"))

    def export_dir(self) -> Path:
        """The shippable student: its model folder with half-precision conditioning and
        denoiser, plus training.json once benchmarked."""
        return self.path(self.student, "export")

    def stages(self) -> list[Stage]:
        """The stage list; writes the run JSONs every training stage reads."""
        c, w, b = self.config, self.config.world, self.config.benchmark
        cpu = ("--cpu",) if self.device == "cpu" else ()
        world, latents = str(self.path("world")), str(self.path("latents"))
        train_clips, test_clips = f"{world}/train.jsonl", f"{world}/test.jsonl"
        codec_model, first_teacher = (
            str(self.path("codec", "model")),
            str(self.path("teacher", "model")),
        )
        finetune = c.finetune.train.max_steps > 0
        teacher_model = str(self.path("finetune", "model")) if finetune else first_teacher
        refine = c.decoder.train.max_steps > 0
        decoder_model = str(self.path("decoder", "model")) if refine else codec_model
        model_json = self._write("model.json", to_dict(c.model))
        frozen = dataclasses.replace(c.decoder.codec, freeze_encoder=True)
        decoder_run = self._run_json(
            "decoder", dataclasses.replace(c.decoder, codec=frozen), codec_model
        )
        teacher_section = dataclasses.replace(c.teacher.teacher, codec_from=decoder_model)
        codec_run = self._run_json("codec", c.codec, model_json)
        teacher_run = self._run_json(
            "teacher", dataclasses.replace(c.teacher, teacher=teacher_section), model_json
        )
        finetune_run = self._run_json("finetune", c.finetune, first_teacher)
        distill_run = self._run_json(self.student, c.distill, teacher_model)
        splits = [("test", w.test_clips), ("train", w.train_clips), ("val", w.val_clips)]
        splits = [(split, clips) for split, clips in splits if clips > 0]
        make_world = tuple(
            (
                *("data", "world", "--out", world, "--clips", str(clips), "--split", split),
                *("--seed", str(w.seed), "--duration", str(w.duration), "--sources", w.sources),
                *("--video-fraction", str(w.video_fraction), "--workers", str(_workers())),
            )
            for split, clips in splits
            if not self.path("world", f"{split}.jsonl").is_file()
        )
        frozen_text = c.model.conditioning.text_encoder in ("minilm", "t5")
        frozen_video = c.model.conditioning.video_encoder in ("clip", "motion")
        encode = (
            *("data", "encode", train_clips, "--out", latents, "--model", codec_model),
            *("--device", self.device, *(("--text",) if frozen_text else ())),
            *(("--video",) if frozen_video else ()),
        )
        guided = ("--steps", str(b.teacher_steps), "--cfg", str(b.teacher_cfg))
        export = str(self.export_dir())
        benchmark = tuple(
            (
                *("benchmark", "world", "--model", model),
                *("--data", test_clips, "--clips", str(b.clips_per_task), "--device", self.device),
                *("--out", str(self.path("benchmark", run)), *extra),
                *(("--tasks", ",".join(b.tasks)) if b.tasks else ()),
            )
            for run, model, extra in (
                ("teacher", teacher_model, guided),
                (self.student, export, ()),
            )
        )
        train = ("--resume", *cpu)
        return [
            Stage("world", self.path("world", f"{splits[-1][0]}.jsonl"), make_world),
            Stage(
                "codec",
                self.path("codec", "model", "config.json"),
                (
                    (
                        "train",
                        "codec",
                        "--config",
                        codec_run,
                        "--data",
                        train_clips,
                        "--out",
                        str(self.path("codec")),
                        *train,
                    ),
                ),
            ),
            Stage("latents", self.path("latents", "index.json"), (encode,)),
            *(
                [
                    Stage(
                        "decoder",
                        self.path("decoder", "model", "config.json"),
                        (
                            (
                                *("train", "codec", "--config", decoder_run),
                                *("--data", train_clips, "--out", str(self.path("decoder"))),
                                *train,
                            ),
                        ),
                    )
                ]
                if refine
                else []
            ),
            Stage(
                "teacher",
                self.path("teacher", "model", "config.json"),
                (
                    (
                        "train",
                        "teacher",
                        "--config",
                        teacher_run,
                        "--data",
                        latents,
                        "--out",
                        str(self.path("teacher")),
                        *train,
                    ),
                ),
            ),
            *(
                [
                    Stage(
                        "finetune",
                        self.path("finetune", "model", "config.json"),
                        (
                            (
                                *("train", "teacher", "--config", finetune_run),
                                *("--data", latents, "--out", str(self.path("finetune"))),
                                *train,
                            ),
                        ),
                    )
                ]
                if finetune
                else []
            ),
            Stage(
                "distill",
                self.path(self.student, "model", "config.json"),
                (
                    (
                        "distill",
                        "--teacher",
                        teacher_model,
                        "--config",
                        distill_run,
                        "--data",
                        latents,
                        "--out",
                        str(self.path(self.student)),
                        *train,
                    ),
                ),
            ),
            Stage("export", self.export_dir() / "config.json", (), self._export),
            Stage("benchmark", self.summary_path(), benchmark, self._summarise),
        ]

    def run(self, until: str | None = None, echo: Callable[[str], None] = print) -> None:
        """Run the stages in order (up to `until`), skipping those already done."""
        if until is not None and until not in STAGES:
            raise AudioXError(f"--until {until!r}: not one of {', '.join(STAGES)}")
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path(self.own_name("recipe")), to_dict(self.config))
        stages = self.stages()
        for i, stage in enumerate(stages, start=1):
            run = self.student if stage.name == "distill" else stage.name
            if stage.output.exists():
                echo(f"[{i}/{len(stages)}] {stage.name}: done ({stage.output})")
            else:
                echo(f"[{i}/{len(stages)}] {stage.name} ...")
                start = time.perf_counter()
                for command in stage.commands:
                    self._command(stage.name, command)
                if stage.then is not None:
                    stage.then()
                self._record_time(self.time_key(stage.name), time.perf_counter() - start)
                echo(f"[{i}/{len(stages)}] {stage.name}: {time.perf_counter() - start:.0f} s")
            if stage.name in ("codec", "decoder", "teacher", "finetune", "distill"):
                plot_curves(self.path(run, "logs", "metrics.jsonl"), self.path("curves"))
            if stage.name == until:
                return

    def selects(self) -> bool:
        """Whether the export stage chooses among students (`SelectionSpec`)."""
        c = self.config
        return c.world.val_clips > 0 and c.distill.train.export_every > 0

    def candidates(self) -> dict[int, Path]:
        """Step -> model folder of the students the export stage chooses among: the
        distillation's exports from `selection.from_step` on and its final model."""
        run = self.path(self.student)
        found = {int(p.name.split("-")[1]): p for p in (run / "exports").glob("step-*")}
        found[self.config.distill.train.max_steps] = run / "model"
        return {s: found[s] for s in sorted(found) if s >= self.config.selection.from_step}

    def _choose_student(self) -> Path:
        """Score each candidate on the validation split (a scored one is not scored again),
        choose by `SelectionSpec`'s rule, record the choice in the student's
        select/choice.json and return the chosen model folder."""
        b, selection, candidates = self.config.benchmark, self.config.selection, self.candidates()
        fd: dict[int, float] = {}
        ids, references, generated = {}, {}, {}
        for step, model in candidates.items():
            out = self.path(self.student, "select", step_dir_name(step))
            if not (out / EMBEDDINGS_FILE).is_file():
                self._command(
                    "export",
                    (
                        *("benchmark", "world", "--model", str(model), "--device", self.device),
                        *("--data", str(self.path("world", "val.jsonl"))),
                        *("--clips", str(b.clips_per_task), "--out", str(out)),
                        *(("--tasks", ",".join(b.tasks)) if b.tasks else ()),
                    ),
                )
            report = json.loads((out / "world_benchmark.json").read_text())
            fd[step] = next(r for r in report["rows"] if r["task"] == "all")["fd"]
            with np.load(out / EMBEDDINGS_FILE) as saved:
                ids[step], references[step] = list(saved["ids"]), saved["reference"]
                generated[step] = saved["generated"]
        steps = sorted(fd)
        if any(ids[s] != ids[steps[0]] for s in steps):
            raise AudioXError(
                f"{self.path(self.student, 'select')}: the candidates were scored on different "
                "validation clips; delete that folder and run the recipe again"
            )
        resampled = paired_resampled_fds(
            references[steps[0]], [generated[s] for s in steps], selection.draws
        )
        step, beaten = latest_not_clearly_beaten(
            fd, dict(zip(steps, resampled, strict=True)), selection.confidence
        )
        choice = {
            "rule": (
                f"the latest not beaten by the lowest validation FD on "
                f"{selection.confidence:.0%} of {selection.draws} prompt resamples"
            ),
            "step": step,
            "fd": fd,
            "beaten_share": beaten,
        }
        write_json_atomic(self.path(self.student, "select", "choice.json"), choice)
        return candidates[step]

    def _export(self) -> None:
        """The student (chosen, or the final one) in half precision, as the export folder."""
        chosen = self._choose_student() if self.selects() else self.path(self.student, "model")
        self._command("export", ("convert", "half", str(chosen), "--out", str(self.export_dir())))

    def _command(self, stage: str, command: tuple[str, ...]) -> None:
        result = subprocess.run([sys.executable, "-m", "audiox_turbo", *command], check=False)
        if result.returncode != 0:
            raise AudioXError(
                f"recipe stage {stage}: `audiox-turbo {' '.join(command[:2])}` exited with "
                f"{result.returncode}; run the recipe again to resume"
            )

    def _write(self, name: str, data: dict[str, Any]) -> str:
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path(name), data)
        return str(self.path(name))

    def _run_json(self, stage: str, run: RunConfig, model: str) -> str:
        return self._write(f"{stage}.json", to_dict(dataclasses.replace(run, model=model)))

    def _record_time(self, stage: str, seconds: float) -> None:
        times_path = self.path("stage_seconds.json")
        times = json.loads(times_path.read_text()) if times_path.is_file() else {}
        write_json_atomic(times_path, times | {stage: round(seconds, 1)})

    def _summarise(self) -> None:
        """`summary_path`: the `all` rows of the teacher and the student; the
        export's training.json: what it was trained on, how long, and how it scored."""
        rows = {}
        for name, run in (("teacher", "teacher"), ("student", self.student)):
            report = json.loads(self.path("benchmark", run, "world_benchmark.json").read_text())
            rows[name] = next(r for r in report["rows"] if r["task"] == "all")
        c = self.config
        times_path = self.path("stage_seconds.json")
        choice = None
        if self.selects():
            choice = json.loads(self.path(self.student, "select", "choice.json").read_text())
        training = {
            "recipe": c.name,
            "device": self.device,
            "world": to_dict(c.world),
            "steps": {
                "codec": (
                    f"none (log-mel; band statistics of {c.codec.codec.statistics_clips} clips)"
                    if c.model.codec.kind == "mel"
                    else c.codec.train.max_steps
                ),
                **({"decoder": c.decoder.train.max_steps} if c.decoder.train.max_steps else {}),
                "teacher": c.teacher.train.max_steps,
                **({"finetune": c.finetune.train.max_steps} if c.finetune.train.max_steps else {}),
                "student": c.distill.train.max_steps if choice is None else choice["step"],
            },
            "stage_seconds": json.loads(times_path.read_text()) if times_path.is_file() else {},
            "benchmark": rows,
            **({"selection": choice} if choice is not None else {}),
        }
        write_json_atomic(self.export_dir() / TRAINING_FILE, training)
        write_json_atomic(self.summary_path(), rows)


def latest_not_clearly_beaten(
    fd: dict[int, float], resampled: dict[int, Any], confidence: float
) -> tuple[int, dict[int, float]]:
    """Step -> validation FD, and step -> its FDs on paired prompt resamples `(draws,)`: the
    latest step that the lowest-FD step (the later on a tie) beats on fewer than `confidence`
    of the resamples, and step -> that share for every step."""
    best = min(fd, key=lambda s: (fd[s], -s))
    beaten = {s: float((resampled[best] < resampled[s]).mean()) for s in sorted(fd)}
    return max(s for s in fd if s >= best and beaten[s] < confidence), beaten


def _workers() -> int:
    """World generation processes: the machine's cores, at most 8 (the output does not depend
    on it)."""
    return max(1, min(8, os.cpu_count() or 1))


def plot_curves(metrics: Path, out_dir: Path) -> Path | None:
    """`out_dir/<run>.png`: every logged loss of a run's metrics.jsonl against its step
    (None when there is no log yet or matplotlib is missing)."""
    if not metrics.is_file():
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series: dict[str, list[tuple[int, float]]] = {}
    for line in metrics.read_text().splitlines():
        row = json.loads(line)
        for key, value in row.items():
            skip = key in ("step", "student_step") or key.endswith("/student_step")
            logged = not skip and not key.startswith(("perf/", "lr/", "grad_norm/"))
            if logged and isinstance(value, int | float):
                series.setdefault(key, []).append((row["step"], float(value)))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, points in sorted(series.items()):
        ax.plot(*zip(*points, strict=True), label=key, linewidth=1)
    ax.set(xlabel="step", ylabel="loss", title=metrics.parent.parent.name)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.legend(fontsize=7, ncol=2)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{metrics.parent.parent.name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
