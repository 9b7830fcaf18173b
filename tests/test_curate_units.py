"""Curation pieces without Ray: the stage-1 measurements and rules on planted signals, the
fingerprint search, the composer and verifier, and the plug-in experts and the CLAP scorer
with tiny randomly initialised local models (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audiox_turbo.curate.decide import clip_reason
from audiox_turbo.curate.fingerprint import best_bit_error_rate, find_duplicates, fingerprint
from audiox_turbo.curate.quality import audio_measurements, silence_split
from audiox_turbo.curate.settings import FilterThresholds, with_overrides
from audiox_turbo.curate.verify import judge_score, select_batch
from audiox_turbo.errors import AudioXError

RATE = 16000
CLASSES = ("music:piano", "sfx:rain", "sfx:knock", "speech:speech")


def tone_mix(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """A noisy chord with a few bursts: passes every rule."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f * t) for f in (220 * (1 + seed), 277, 330)) / 6
    x += 0.05 * rng.standard_normal(len(t))
    for start in rng.uniform(0, seconds - 0.2, 5):
        i = int(start * RATE)
        x[i : i + 800] += 0.3 * rng.standard_normal(800)
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def row_for(audio: np.ndarray) -> dict:
    return {"error": "", "has_audio": True, "has_video": False, "duration": len(audio) / RATE,
            **audio_measurements(audio, RATE)}  # fmt: skip


def test_rules_name_dc_hum_and_clipping() -> None:
    t = FilterThresholds()
    good = tone_mix()
    assert clip_reason(row_for(good), t) == ""
    assert clip_reason(row_for(good * 0.3 + 0.6), t) == "dc_offset"
    hum = np.sin(2 * np.pi * 50 * np.arange(3 * RATE) / RATE).astype(np.float32) * 0.5
    assert clip_reason(row_for(hum + 0.01 * good), t) == "hum"
    assert clip_reason(row_for(np.clip(good * 6, -1, 1)), t) == "clipped"
    assert clip_reason(row_for(good[:8000]), t) == "too_short"


def test_silence_split_finds_the_sounding_pieces() -> None:
    x = np.concatenate([tone_mix(1.0), np.zeros(RATE), tone_mix(1.5, 1)])
    pieces = silence_split(x, RATE, gap_s=0.3)
    assert len(pieces) == 2
    assert abs(pieces[1][0] / RATE - 2.0) < 0.05


def test_fingerprints_find_shifted_copies_only() -> None:
    a, b = tone_mix(seed=0), tone_mix(seed=1)
    shifted = a[int(0.37 * RATE) :] * 0.7
    fa, fb, fs = fingerprint(a), fingerprint(b), fingerprint(shifted)
    assert best_bit_error_rate(fa, fs) < 0.2 < best_bit_error_rate(fa, fb)
    dropped = find_duplicates(["a", "b", "s"], ["h1", "h2", "h3"], [fa, fb, fs], 0.2)
    assert dropped == {"s": ("near_duplicate", "a")}
    assert find_duplicates(["a", "c"], ["h", "h"], [fa, fa], 0.2) == {"c": ("exact_duplicate", "a")}


def test_threshold_overrides_are_checked() -> None:
    assert with_overrides(FilterThresholds(), ["silence_dbfs=-70"]).silence_dbfs == -70
    for bad in (["nope=1"], ["silence_dbfs"], ["silence_dbfs=loud"]):
        with pytest.raises(AudioXError, match="--threshold"):
            with_overrides(FilterThresholds(), bad)


def facts(klass: str = "music:piano", tempo: float | None = 120.0) -> dict:
    probs = [0.9 if c == klass else 0.1 / 3 for c in CLASSES]
    return {"category": klass.split(":")[0], "category_prob": 0.95, "class": klass,
            "class_probs": probs, "instruments": ["piano"], "tempo": tempo, "key": "C",
            "mode": "major", "onsets": []}  # fmt: skip


def test_the_verifier_scores_claims() -> None:
    f = facts()
    assert judge_score("Upbeat piano at 121 BPM in C major.", f, CLASSES) == pytest.approx(0.9)
    assert judge_score("Piano at 150 BPM.", f, CLASSES) == 0.0  # tempo off by 25 %
    assert judge_score("Piano in A minor.", f, CLASSES) == 0.0  # wrong key
    assert judge_score("Rain on a roof.", f, CLASSES) < 0.1  # the judge's class is piano
    assert judge_score("Something nice.", f, CLASSES) == 0.0  # nothing checkable
    assert judge_score("Some music.", f, CLASSES) == pytest.approx(0.475)


def test_select_keeps_good_captions_in_order_and_records_rejections() -> None:
    import pandas as pd

    batch = pd.DataFrame({
        "facts": [json.dumps(facts())],
        "candidates": [["Rain falling.", "Piano at 120 BPM.", "Piano music.", "Piano solo."]],
    })  # fmt: skip
    out = select_batch(batch, CLASSES, wanted=2, min_score=0.1)
    assert out["captions"][0] == ["Piano at 120 BPM.", "Piano music."]
    assert out["rejected_captions"][0] == ["Rain falling."]


def tiny_plugins(root: Path) -> tuple[Path, Path]:
    """A random AST audio classifier and a random wav2vec2 CTC recogniser, saved offline."""
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTForAudioClassification,
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )  # fmt: skip

    labels = {0: "dog", 1: "rain", 2: "piano"}
    config = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=37, max_length=128, num_mel_bins=32, id2label=labels,
                       label2id={v: k for k, v in labels.items()})  # fmt: skip
    ASTForAudioClassification(config).save_pretrained(root / "tagger")
    ASTFeatureExtractor(num_mel_bins=32, max_length=128).save_pretrained(root / "tagger")
    letters = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz"]
    (root / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(letters)}))
    processor = Wav2Vec2Processor(
        feature_extractor=Wav2Vec2FeatureExtractor(sampling_rate=RATE),
        tokenizer=Wav2Vec2CTCTokenizer(str(root / "vocab.json")),
    )
    processor.save_pretrained(root / "asr")
    config = Wav2Vec2Config(vocab_size=len(letters), hidden_size=32, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=37, conv_dim=(16, 16),
                            conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, pad_token_id=0)  # fmt: skip
    Wav2Vec2ForCTC(config).save_pretrained(root / "asr")
    return root / "tagger", root / "asr"


@pytest.mark.slow  # builds and runs random transformers models (~30 s on 2 cores)
def test_plugin_experts_run_local_transformers_folders(tmp_path: Path) -> None:
    from audiox_turbo.curate.captions import compose
    from audiox_turbo.curate.experts import TransformersExpert, parse_plugins

    tagger, asr = tiny_plugins(tmp_path)
    plugins = parse_plugins([f"tagger={tagger}", f"asr={asr}"])
    clips = [tone_mix(1.0), tone_mix(1.5, 1)]
    tags = TransformersExpert(*plugins[0])(clips)
    assert [len(t["tags"]) for t in tags] == [3, 3]
    assert {name for name, _ in tags[0]["tags"]} == {"dog", "rain", "piano"}
    words = TransformersExpert(*plugins[1])(clips)
    assert all(isinstance(w["transcript"], str) for w in words)
    caption = compose({**facts(), "tags": tags[0]["tags"]}, "clip", 2)[1]
    assert tags[0]["tags"][0][0] in caption
    with pytest.raises(AudioXError, match="KIND=DIR"):
        parse_plugins(["clap=/nowhere"])


def tiny_clap(root: Path) -> Path:
    """A random CLAP (1-layer text and audio towers) with a byte-level BPE tokenizer trained on
    two sentences, saved offline."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizerFast,
    )  # fmt: skip

    bpe = ByteLevelBPETokenizer()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(
        ["a piano sound at 120 bpm in C major", "rain and knock sounds, speech"],
        vocab_size=300, special_tokens=special,
    )  # fmt: skip
    names = dict(zip(("bos", "pad", "eos", "unk", "mask"), special, strict=True))
    tok = RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer, **{f"{k}_token": v for k, v in names.items()}
    )
    features = ClapFeatureExtractor(truncation="rand_trunc")
    ClapProcessor(feature_extractor=features, tokenizer=tok).save_pretrained(root)
    text = ClapTextConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=37, projection_dim=16,
                          max_position_embeddings=64)  # fmt: skip
    audio = ClapAudioConfig(hidden_size=32, depths=[1, 1], num_attention_heads=[2, 2],
                            patch_embeds_hidden_size=16, projection_dim=16,
                            window_size=8)  # fmt: skip
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)
    ClapModel(config).save_pretrained(root)
    return root


@pytest.mark.slow  # builds and runs random transformers models (~30 s on 2 cores)
def test_clap_scores_every_candidate_and_contradictions_still_fail(tmp_path: Path) -> None:
    import pandas as pd

    from audiox_turbo.curate.verify import ClapScorer

    scorer = ClapScorer(str(tiny_clap(tmp_path / "clap")), RATE)
    candidates = ["A piano sound.", "Rain and knock sounds.", "Piano at 200 BPM."]
    batch = pd.DataFrame({
        "wave": [tone_mix(2.0)], "facts": [json.dumps(facts())], "candidates": [candidates],
    })  # fmt: skip
    scored = scorer(batch)
    sims = scored["clap_scores"][0]
    assert len(sims) == 3 and all(-1.0 <= s <= 1.0 for s in sims)
    assert sims[0] != sims[1]
    out = select_batch(scored, CLASSES, wanted=3, min_score=-1.0)
    assert "Piano at 200 BPM." in out["rejected_captions"][0]  # contradicts the tempo
    assert out["caption_scores"][0] == [round(s, 4) for s in sims[:2]]


def test_recordings_are_cut_into_windows() -> None:
    from audiox_turbo.curate.collect import windows
    from audiox_turbo.curate.settings import CutSettings

    x = np.concatenate([tone_mix(4.0), np.zeros(RATE), tone_mix(2.5, 1)])
    fixed = windows(x, RATE, CutSettings(clip_seconds=3.0, min_seconds=1.0))
    assert [(a / RATE, b / RATE) for a, b in fixed] == [(0, 3), (3, 6), (6, 7.5)]
    cut = windows(x, RATE, CutSettings(clip_seconds=3.0, min_seconds=1.0, split="silence"))
    assert len(cut) == 3 and abs(cut[2][0] / RATE - 5.0) < 0.05  # 3 s + 1 s, then 2.5 s
    assert len(windows(tone_mix(0.5), RATE, CutSettings())) == 1  # kept to record too_short


def test_video_windows_decode_from_their_start(tmp_path: Path) -> None:
    from audiox_turbo.curate.video_checks import luma_frames, motion
    from audiox_turbo.data.world.media import write_mp4

    frames = np.zeros((100, 32, 32, 3), np.uint8)
    frames[60:] = 200  # the picture changes at 2.4 s
    write_mp4(tmp_path / "v.mp4", frames, 25)
    late, fps = luma_frames(str(tmp_path / "v.mp4"), 2.0, 1.0)
    assert fps == 25 and len(late) == 25
    assert int(np.argmax(motion(late))) == 10


def test_bad_input_is_one_line_before_ray_starts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from audiox_turbo.cli.curate import app

    cases = {
        ("collect", str(tmp_path / "nope"), "--out", str(tmp_path / "o")): "no such file",
        ("annotate", str(tmp_path)): "not a collected folder",
        ("export", str(tmp_path), "--shards", str(tmp_path / "s")): "not a collected folder",
        ("collect", str(tmp_path), "--out", str(tmp_path / "o"), "--split", "x"): "--split",
    }
    for args, message in cases.items():
        error = CliRunner().invoke(app, list(args)).exception
        assert isinstance(error, AudioXError) and message in str(error), (args, error)
        assert "\n" not in str(error)
