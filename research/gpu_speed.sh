#!/usr/bin/env bash
# The GPU figures of docs/speed.md in one script (needs a CUDA GPU; no weights: full-size architectures, random weights).
#   bash research/gpu_speed.sh [OUT_DIR]
# Each line is one measurement; results land in OUT_DIR/<name>/benchmark.{json,md} and are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/gpu_speed}
PY=${PYTHON:-python}
export HF_HUB_OFFLINE=1 WANDB_MODE=offline
bench() { name=$1; shift; $PY -m videoshop_bench.research.benchmark_edit model=svd_random device=cuda metrics=none bench.repeats=3 \
          bench.out="$OUT/$name" "$@" | tee "$OUT/$name.log"; }
mkdir -p "$OUT"
bench plain_fp16                                          # authors' settings, fp16, SDPA: the headline figure
bench fast_fp16 runtime=fast                               # + torch.compile + channels-last
bench flash_fp16 runtime.attention=flash
bench bf16 model.dtype=bfloat16
bench cfg_two_passes method.cfg_batch=false
bench offload runtime.offload=model
$PY research/benchmark_metrics.py --backbones real-random --device cuda --videos 3 --frames 14 --height 576 --width 1024 | tee "$OUT/metrics.log"
