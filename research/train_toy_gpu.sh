#!/usr/bin/env bash
# Stage 2 of the shipped toy SVD (the UNet) on one CUDA GPU, as MODEL_CARD.md records it: on the VAE of the model
# in videoshop/assets/toy (train.retrain_unet_from keeps stages 1 and 3 byte for byte), a 6.5-minute run, then a
# 3.4-minute warm restart from its weights (train.unet_init_from, generator seed 1). About 11 min on an H200.
#   bash research/train_toy_gpu.sh [OUT_DIR]        (DEVICE=cpu NUM_VIDEOS=4 MIN1=0.01 MIN2=0.01: a CPU dry run)
# Each run's budget is wall-clock (train.max_minutes; the learning rate anneals over it), so the number of steps
# depends on the machine: 3764 + 2012 steps of batch 32 on the H200 that trained the shipped weights (about 0.1 s
# per step: the tiny model is bound by kernel launches, not by the GPU). Logs: OUT_DIR/{smoke,gpu1,gpu2}.log;
# the model: OUT_DIR/gpu2 (copy its unet/, training_summary.json and loss_history.npz into videoshop/assets/toy).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/toy_gpu}
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
MIN1=${MIN1:-6.5}
MIN2=${MIN2:-3.4}
NUM_VIDEOS=${NUM_VIDEOS:-10000}
export HF_HUB_OFFLINE=1 WANDB_MODE=offline PYTHONUNBUFFERED=1
mkdir -p "$OUT"
common=(experiment=train_toy train.retrain_unet_from=videoshop/assets/toy "train.device=$DEVICE" train.threads=4
        "train.num_videos=$NUM_VIDEOS" train.unet_batch=32 train.unet_steps=1000000 train.log_every=200)
run() { log=$1; shift; $PY run.py "${common[@]}" "$@" > "$OUT/$log.log" 2>&1 || { tail -30 "$OUT/$log.log"; exit 1; }
        grep -h "stopped\|saved" "$OUT/$log.log"; }
# smoke: the whole path (render, encode, 3 steps, save) in seconds, before the long runs
run smoke train.num_videos=16 train.unet_steps=3 "train.output_dir=$OUT/smoke"
run gpu1 "train.max_minutes=$MIN1" "train.output_dir=$OUT/gpu1"
run gpu2 "train.max_minutes=$MIN2" "train.unet_init_from=$OUT/gpu1" train.seed=1 "train.output_dir=$OUT/gpu2"
