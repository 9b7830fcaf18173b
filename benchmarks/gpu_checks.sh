#!/usr/bin/env bash
# Every GPU check of the open issues in one device call (under 10 minutes), most important
# first; each stage has its own time limit so a slow one cannot cost the others. Logs and JSON
# go to $OUT; the exit status is 1 if any stage failed.
#   bash benchmarks/gpu_checks.sh
set -uo pipefail
failed=0
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv
  python -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
} 2>&1 | tee "$OUT/machine.log"
timeout 200 python benchmarks/bench_generate.py --presets base --device cuda --dtype bfloat16 \
  --cuda-graphs --out "$OUT/generate.json" 2>&1 | tee "$OUT/generate.log" || failed=1
timeout 150 python benchmarks/gpu_official.py --dtype bf16 --cuda-graphs --warmup 2 --repeats 5 \
  2>&1 | tee "$OUT/official.log" || failed=1
timeout 80 python -m pytest -m gpu -q --continue-on-collection-errors tests/test_graphs.py \
  tests/test_fusion.py tests/test_conditioning.py tests/test_trainer.py 2>&1 | tee "$OUT/tests.log" || failed=1
timeout 150 python benchmarks/gpu_train_step.py --batch 8 --compile blocks 2>&1 \
  | tee "$OUT/train.log" || failed=1
# last: the sum of the limits above leaves it only what remains of the 10 minutes
timeout 60 python benchmarks/bench_synchformer.py --device cuda --dtypes fp32 bf16 --repeats 5 \
  --out "$OUT/synchformer.json" 2>&1 | tee "$OUT/synchformer.log" || failed=1
exit "$failed"
