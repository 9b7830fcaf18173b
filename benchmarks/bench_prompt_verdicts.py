"""What a model does with everyday prompts: the judge's verdict on each of a list of short text
prompts, a few seeds each (the README's "prompts that work").

    python benchmarks/bench_prompt_verdicts.py                    # the shipped model
    python benchmarks/bench_prompt_verdicts.py --model runs/demo/distill/export --seeds 16

Eight seeds by default: with four, the count moved by about ±4 of 84 from one checkpoint of a
run to the next (docs/default_model.md). Also reports the classes heard most often in place of
the asked one, over all prompts.

Prints one row per prompt (right / seeds, what the judge heard) and writes
benchmarks/results/prompt_verdicts.json.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from audiox_turbo.atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"

# (prompt, the judge class it asks for)
PROMPTS = (
    ("A man talking.", "speech:speech"),
    ("A drum pattern played on an acoustic kit.", "music:drum kit"),
    ("A drum pattern at 120 BPM.", "music:drum kit"),
    ("Rain falling.", "sfx:rain"),
    ("Birds chirping.", "sfx:bird chirps"),
    ("Applause.", "sfx:applause"),
    ("Applause from a crowd.", "sfx:applause"),
    ("A car passing by.", "sfx:car passing"),
    ("A helicopter.", "sfx:helicopter"),
    ("Waves crashing.", "sfx:waves"),
    ("A siren wailing.", "sfx:siren"),
    ("A dog barking.", "sfx:dog barking"),
    ("A ball bouncing.", "sfx:impact"),
    ("Laughter.", "sfx:laughter"),
    ("Beeps.", "sfx:beeps"),
    ("Thunder rumbling.", "sfx:thunder"),
    ("A church bell ringing.", "sfx:bell"),
    ("A cat meowing.", "sfx:cat meowing"),
    ("A cow mooing.", "sfx:cow mooing"),
    ("Footsteps.", "sfx:footsteps"),
    ("A piano melody.", "music:piano"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="Model folder (default: the shipped model).")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "prompt_verdicts.json")
    args = parser.parse_args()

    import torch

    from audiox_turbo import AudioXTurbo
    from audiox_turbo.eval.judge import load_judge_embedder

    pipe = AudioXTurbo.from_pretrained(args.model, device="cpu")
    judge = load_judge_embedder(None)
    classes = judge.net.config.classes
    unknown = sorted({label for _, label in PROMPTS} - set(classes))
    if unknown:
        raise SystemExit(f"the judge has no class {', '.join(unknown)}")
    rows = []
    for text, label in PROMPTS:
        with torch.inference_mode():
            out = pipe([text] * args.seeds, duration=args.duration, seed=0)
        heard = judge.all_outputs(out.waveforms[:, 0], out.sample_rate).klass.argmax(1).tolist()
        names = [classes[i] for i in heard]
        others = collections.Counter(n for n in names if n != label)
        rows.append(
            {
                "prompt": text,
                "asked": label,
                "right": sum(n == label for n in names),
                "heard": dict(others.most_common()),
            }
        )
        wrong = ", ".join(f"{n} {c}" for n, c in others.most_common()) or "–"
        print(f"| {text} | {rows[-1]['right']}/{args.seeds} | {wrong} |", flush=True)
    total = sum(r["right"] for r in rows)
    confusions = sum((collections.Counter(r["heard"]) for r in rows), collections.Counter())
    print(f"right: {total} of {len(rows) * args.seeds}")
    print("heard instead: " + ", ".join(f"{n} {c}" for n, c in confusions.most_common(3)))
    write_json_atomic(
        args.out,
        {
            "model": args.model or "shipped",
            "seeds": args.seeds,
            "duration": args.duration,
            "right": total,
            "of": len(rows) * args.seeds,
            "heard_instead": dict(confusions.most_common()),
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
