"""Benchmark the released-size `official` AudioX-Turbo model with random weights on CPU.

Measures, per dtype (each in its own subprocess so peak memory is per dtype): build time,
seconds per NFE (denoiser forward, batch 1, 236 frames), end-to-end `generate` for 10.96 s
stereo at 4 steps (text prompt, no video, silent audio prompt) split into conditioning /
sampling / decoding, and peak resident memory. Prints a table and writes
benchmarks/results/official.json. `--tiny` runs the official_tiny preset (seconds).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from audiox_turbo.atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


class ToyTokenizer:
    """Whitespace tokenizer with T5's conventions (pad 0, eos 1 appended); no files needed."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def __call__(
        self, prompts: list[str], max_length: int, return_tensors: str = "pt", **_: Any
    ) -> dict[str, Any]:
        import torch

        ids = torch.zeros(len(prompts), max_length, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            words = [2 + sum(map(ord, w)) % (self.vocab_size - 2) for w in prompt.split()]
            tokens = [*words[: max_length - 1], 1]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def fill_random_(model: Any, seed: int) -> None:
    """Uniform ±1/√fan_in weights, unit norm gains, zero biases; weight-norm g = ‖v‖."""
    import torch

    g = torch.Generator(model.device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                continue
            if p.ndim >= 2:
                bound = 1.0 / math.sqrt(p[0].numel())
                p.copy_(
                    torch.empty_like(p, dtype=torch.float32).uniform_(-bound, bound, generator=g)
                )
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                v = model.get_parameter(name[: -len("weight_g")] + "weight_v")
                p.copy_(torch.linalg.vector_norm(v.float(), dim=(1, 2), keepdim=True))


def build_random_model(preset: str, device: str, dtype: str, seed: int = 0) -> Any:
    """The preset's OfficialAudioXTurbo with random weights and a random T5 encoder of the
    released shape (t5-base; tiny: width 32), built without materialising a float32 copy."""
    import torch
    from transformers import T5Config, T5EncoderModel

    from audiox_turbo.official.config import official_preset
    from audiox_turbo.official.model import OfficialAudioXTurbo
    from audiox_turbo.official.text import OfficialTextConditioner

    config = official_preset(preset)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    with torch.device("meta"):
        model = OfficialAudioXTurbo(config)
    model.cast(torch_dtype).to_empty(device=device)
    model.restore_buffers(torch.device(device))
    fill_random_(model, seed)
    if preset == "official":
        t5_config = T5Config(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    else:
        t5_config = T5Config(d_model=config.cond_dim, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    text_dtype = torch.float16 if device.startswith("cuda") else torch.float32
    encoder = T5EncoderModel(t5_config).to(device=device, dtype=text_dtype)
    tokenizer = ToyTokenizer(t5_config.vocab_size)
    model.text_encoder = OfficialTextConditioner(encoder, tokenizer, config.text_max_tokens)
    return model


def peak_rss_gib() -> float:
    """Peak resident set size of this process (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure(preset: str, dtype: str, nfe_repeats: int) -> dict[str, Any]:
    """All numbers for one dtype, in this process."""
    import torch

    start = time.perf_counter()
    model = build_random_model(preset, "cpu", dtype)
    build_s = time.perf_counter() - start
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(1, c.codec.latent_dim, c.latent_frames, dtype=model.dtype)
    cond = torch.randn(1, c.cond_sequence, c.cond_dim, dtype=model.dtype)
    t = torch.full((1,), 0.5, dtype=model.dtype)
    nfe_times = []
    with torch.no_grad():
        for _ in range(nfe_repeats + 1):
            tick = time.perf_counter()
            model.denoiser(x, t, cond)
            nfe_times.append(time.perf_counter() - tick)
    marks: list[float] = []
    tick = time.perf_counter()
    wav, sr = model.generate(
        "a dog barking in the rain",
        duration=c.duration,
        seed=0,
        callback=lambda i, n: marks.append(time.perf_counter()),
    )
    end = time.perf_counter()
    stamps = [tick, *marks]
    return {
        "preset": preset,
        "dtype": dtype,
        "parameters": params,
        "build_s": build_s,
        "nfe_s": min(nfe_times[1:]),
        "nfe_first_s": nfe_times[0],
        "end_to_end_s": end - tick,
        "steps_s_first_includes_conditioning": [b - a for a, b in itertools.pairwise(stamps)],
        "decode_s": end - marks[-1],
        "audio_seconds": wav.shape[-1] / sr,
        "output_shape": list(wav.shape),
        "peak_rss_gib": peak_rss_gib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="official_tiny preset (fast check)")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--nfe-repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "official.json")
    args = parser.parse_args()
    preset = "official_tiny" if args.tiny else "official"
    if args.worker:
        print(json.dumps(measure(preset, args.dtype, args.nfe_repeats)))
        return
    rows = []
    for dtype in ["fp32", "bf16"] if args.dtype == "both" else [args.dtype]:
        cmd = [sys.executable, __file__, "--worker", "--dtype", dtype]
        cmd += ["--nfe-repeats", str(args.nfe_repeats)] + (["--tiny"] if args.tiny else [])
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'dtype':<6}{'params':>15}{'s/NFE':>9}{'e2e s':>9}{'decode s':>10}{'peak GiB':>10}")
    for r in rows:
        print(
            f"{r['dtype']:<6}{r['parameters']:>15,}{r['nfe_s']:>9.2f}{r['end_to_end_s']:>9.2f}"
            f"{r['decode_s']:>10.2f}{r['peak_rss_gib']:>10.2f}"
        )
    import torch

    machine = {
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    write_json_atomic(args.out, {"machine": machine, "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
