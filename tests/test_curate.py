"""The curation pipeline end to end on a local 2-CPU Ray instance: stage 1 on world clips with
planted defects, resuming, re-filtering, stage 2's captions and verifier (built-in composer
and a tiny random causal LM), export and a few teacher steps on the shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("ray")

import itertools

from typer.testing import CliRunner

from audiox_turbo.curate.annotate_stage import annotations
from audiox_turbo.curate.engine import PartStore, ray_session
from curate_corpus import build_corpus

WRONG_CAPTION = "Heavy rain and thunder at 200 BPM."


@pytest.fixture(scope="module")
def ray_local():
    with ray_session(num_cpus=2):
        yield


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory, ray_local: None):
    from audiox_turbo.cli.curate import app

    root = tmp_path_factory.mktemp("corpus")
    expected = build_corpus(root)
    first = sorted(n for n, r in expected.items() if not r and n.endswith(".wav"))[0]
    (root / "a_good" / first).with_suffix(".txt").write_text(WRONG_CAPTION)
    out = root / "curated"
    sources = [str(root / "a_good"), str(root / "z_defects")]
    interrupted = interrupt_after_first_block(sources, out)
    args = ["collect", *sources, "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--files-per-block", "8"])
    assert result.exit_code == 0, result.output
    interrupted["resumed"] = json.loads((out / "collect_report.json").read_text())
    interrupted["first_part_after"] = (out / "clips/table/part-00000.parquet").stat().st_mtime_ns
    return root, out, expected, args, interrupted


class Interrupted(Exception):
    pass


def interrupt_after_first_block(sources: list[str], out: Path) -> dict:
    """Start collecting and stop the run (as Ctrl-C would) once the first block is written."""
    from audiox_turbo.curate.collect_stage import run_collect
    from audiox_turbo.curate.settings import CutSettings, FilterThresholds

    def echo(line: str) -> None:
        if "done" in line:
            raise Interrupted(line)

    with pytest.raises(Interrupted):
        run_collect(sources, out, CutSettings(), FilterThresholds(), 8, echo=echo)
    parts = sorted((out / "clips" / "table").glob("part-*.parquet"))
    return {"parts": [p.name for p in parts], "first_part": parts[0].stat().st_mtime_ns}


def test_an_interrupted_collect_resumes_without_redoing_finished_blocks(collected) -> None:
    interrupted = collected[4]
    assert interrupted["parts"] == ["part-00000.parquet"]
    assert (interrupted["resumed"]["blocks_run"], interrupted["resumed"]["blocks_skipped"]) == (
        2,
        1,
    )
    assert interrupted["first_part_after"] == interrupted["first_part"]


def decisions_by_name(out: Path) -> dict[str, str]:
    import pandas as pd

    table = PartStore(out / "clips" / "table").read(["clip_id", "source"])
    joined = table.merge(pd.read_parquet(out / "decisions.parquet"), on="clip_id")
    return {Path(s).name: r for s, r in zip(joined["source"], joined["reason"], strict=True)}


def test_collect_keeps_the_good_clips_and_names_each_defect(collected) -> None:
    _, out, expected, _, _ = collected
    assert decisions_by_name(out) == expected
    kept = [p for p in (out / "clips" / "audio").iterdir()]
    assert len(kept) >= sum(1 for r in expected.values() if not r)


def test_resume_redoes_only_the_missing_block(collected) -> None:
    from audiox_turbo.cli.curate import app

    _, out, expected, args, _ = collected
    parts = sorted((out / "clips" / "table").glob("part-*.parquet"))
    assert len(parts) == 3
    before = {p: p.stat().st_mtime_ns for p in parts}
    parts[1].unlink()
    result = CliRunner().invoke(app, [*args, "--files-per-block", "8"])
    assert result.exit_code == 0, result.output
    assert "1 to run" in result.output
    report = json.loads((out / "collect_report.json").read_text())
    assert (report["blocks_run"], report["blocks_skipped"]) == (1, 2)
    assert all(p.stat().st_mtime_ns == before[p] for p in (parts[0], parts[2]))
    assert decisions_by_name(out) == expected


def test_filter_changes_a_threshold_without_decoding(collected) -> None:
    from audiox_turbo.cli.curate import app

    _, out, expected, _, _ = collected
    runner = CliRunner()
    loose = runner.invoke(app, ["filter", str(out), "--threshold", "silence_dbfs=-300"])
    assert loose.exit_code == 0, loose.output
    assert decisions_by_name(out)["silence.wav"] == ""
    assert runner.invoke(app, ["filter", str(out)]).exit_code == 0
    assert decisions_by_name(out) == expected
    bad = runner.invoke(app, ["filter", str(out), "--threshold", "loudness=3"])
    assert bad.exit_code != 0


@pytest.fixture(scope="module")
def annotated(collected):
    from audiox_turbo.cli.curate import app

    _, out, _, _, _ = collected
    result = CliRunner().invoke(
        app, ["annotate", str(out), "--batch-size", "4", "--actor-cpus", "0.5"]
    )
    assert result.exit_code == 0, result.output
    return annotations(out)


def test_captions_carry_the_world_labels(collected, annotated) -> None:
    from audiox_turbo.data.world.labels import has_measurable_key

    root, out, _, _, _ = collected
    world = {
        json.loads(line)["id"]: json.loads(line)
        for line in (root / "world" / "train.jsonl").read_text().splitlines()
    }
    table = PartStore(out / "clips" / "table").read(["clip_id", "source"])
    names = dict(zip(table["clip_id"], table["source"].map(lambda s: Path(s).stem), strict=True))
    hits: dict[str, list[bool]] = {"class": [], "tempo": [], "key": [], "instrument": []}
    for row in annotated.itertuples():
        record = world.get(names[row.clip_id])
        if record is None:
            continue
        labels, text = record["labels"], " ".join(row.captions).lower()
        hits["class"].append(labels["class"] in text)
        if labels["category"] == "music":
            words = text.replace(".", " ").split()
            bpm = [float(w) for w, n in itertools.pairwise(words) if n == "bpm"]
            hits["tempo"].append(
                any(abs(b - labels["tempo"]) <= 0.04 * labels["tempo"] for b in bpm)
            )
            if has_measurable_key(labels):
                hits["key"].append(f"{labels['key']} {labels['mode']}".lower() in text)
            hits["instrument"] += [i in text for i in labels["instruments"]]
    rates = {k: sum(v) / len(v) for k, v in hits.items() if v}
    assert len(hits["class"]) >= 10 and len(hits["tempo"]) >= 1, hits
    # the facts come from the shipped judge and the measurements: right on most clips
    assert rates["class"] >= 0.8 and rates["tempo"] >= 0.75 and rates.get("key", 1.0) >= 0.5, rates
    assert rates["instrument"] >= 0.5, rates


def test_the_verifier_rejects_a_wrong_caption(annotated) -> None:
    rejected = [c for cs in annotated["rejected_captions"] for c in cs]
    assert WRONG_CAPTION in rejected
    assert all(all(s >= 0.1 for s in scores) for scores in annotated["caption_scores"])


def test_llm_captions_from_a_local_random_model(collected, tmp_path: Path) -> None:
    from audiox_turbo.curate.annotate_stage import run_annotate
    from audiox_turbo.curate.settings import AnnotateSettings

    _, out, _, _, _ = collected
    copy = tmp_path / "curated"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("annotations"))
    for part in sorted((copy / "clips" / "table").glob("part-*.parquet"))[1:]:
        part.unlink()  # one block is enough here
    llm = tiny_causal_lm(tmp_path / "lm")
    summary = run_annotate(
        copy,
        AnnotateSettings(batch_size=8, actor_cpus=0.5, captions=2, llm_retries=1),
        llm=str(llm),
    )
    assert summary["captioned"] == summary["clips"] > 0
    table = annotations(copy)
    written = [c for cs in table["captions"] for c in cs] + [
        c for cs in table["rejected_captions"] for c in cs
    ]
    composed = {c for cs in annotations(out)["captions"] for c in cs}
    assert any(c not in composed and c != WRONG_CAPTION for c in written)


def tiny_causal_lm(folder: Path) -> Path:
    """A randomly initialised 1-layer GPT-2 with a word-level tokenizer, saved offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = [
        "a",
        "the",
        "clip",
        "piano",
        "drum",
        "rain",
        "sound",
        "at",
        "bpm",
        "in",
        "major",
        "minor",
        "music",
        "fast",
        "slow",
        "of",
        "and",
    ]
    vocab = {w: i for i, w in enumerate(["[UNK]", "[EOS]", *words, "{", "}", ":", ",", '"'])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="[EOS]")
    tok.save_pretrained(folder)
    config = GPT2Config(vocab_size=len(vocab), n_layer=1, n_head=2, n_embd=16, n_positions=512)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_export_trains_the_tiny_teacher(collected, annotated, tmp_path: Path) -> None:
    from audiox_turbo.cli.curate import app
    from audiox_turbo.cli.train import app as train_app

    _, out, _, _, _ = collected
    shards = tmp_path / "shards"
    result = CliRunner().invoke(app, ["export", str(out), "--shards", str(shards)])
    assert result.exit_code == 0, result.output
    card = json.loads((shards / "card.json").read_text())
    assert card["exported"] == len(annotated) and card["collect"]["silent"] == 1
    assert (shards / "README.md").read_text().count("|") > 10
    assert all((shards / "plots" / f).stat().st_size > 0 for f in ("durations.png", "classes.png"))
    config = tmp_path / "run.json"
    config.write_text(json.dumps({
        "model": "tiny",
        "train": {"batch_size": 2, "crop_seconds": 0.5, "num_workers": 0},
        "teacher": {"validation_prompts": [], "validation_batch": 0},
    }))  # fmt: skip
    args = ["teacher", "--config", str(config), "--data", str(shards)]
    run = CliRunner().invoke(train_app, [*args, "--out", str(tmp_path / "run"), "--max-steps", "2"])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "run" / "model" / "denoiser.safetensors").is_file()


def test_a_refilter_reannotates_only_the_changed_block(collected, annotated) -> None:
    from audiox_turbo.cli.curate import app

    _, out, _, _, _ = collected
    runner = CliRunner()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "annotations").glob("*.parquet")}
    assert (
        runner.invoke(app, ["filter", str(out), "--threshold", "silence_dbfs=-300"]).exit_code == 0
    )
    result = runner.invoke(app, ["annotate", str(out), "--actor-cpus", "0.5"])
    assert result.exit_code == 0, result.output
    assert "1 to run" in result.output
    after = {p.name: p.stat().st_mtime_ns for p in (out / "annotations").glob("*.parquet")}
    assert sum(after[name] != before[name] for name in before) == 1
    assert len(annotations(out)) == len(annotated) + 1
