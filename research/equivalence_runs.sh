#!/bin/bash
# Before/after runs for a refactor: the smoke presets of Tables 2, 3 and 5 and the CI regression, one at a time, on
# one thread, into OUTROOT/<preset>/ (compare two roots with python -m videoshop_bench.research.compare_runs BEFORE AFTER).
#   research/equivalence_runs.sh SOURCE_TREE OUTROOT      # SOURCE_TREE: e.g. `git archive REV | tar -x -C DIR`
# Run a copy of this script, not the file itself, if you may edit it meanwhile (bash reads scripts as it goes).
# Caches and the regression's run folder sit at FIXED paths (emptied first): metrics_hash / edit_hash include
# paths.cache, so every root is made with the same path strings and its hashes are comparable.
set -u
WT=$1; OUT=$2
cd "$WT" || exit 1
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 WANDB_MODE=offline OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PYTHON:-python}
mkdir -p "$OUT"
cat "$WT/.rev" > "$OUT/REV" 2>/dev/null || git -C "$WT" rev-parse HEAD > "$OUT/REV"
SCRATCH=${EQUIV_SCRATCH:-/tmp/videoshop-equivalence}
CACHE=$SCRATCH/cache
for t in paper_table2 paper_table3 paper_table5; do
  rm -rf $CACHE
  echo "$(date -u +%T) start $t" >> "$OUT/progress.log"
  $PY run.py experiment=$t smoke=true threads=1 logger=none \
     paths.cache=$CACHE/$t hydra.sweep.dir=$OUT/$t > "$OUT/$t.log" 2>&1
  echo "$(date -u +%T) end $t rc=$?" >> "$OUT/progress.log"
done
rm -rf $CACHE $SCRATCH/regression
echo "$(date -u +%T) start regression" >> "$OUT/progress.log"
$PY run.py experiment=regression threads=1 hydra.run.dir=$SCRATCH/regression > "$OUT/regression.log" 2>&1
echo "$(date -u +%T) end regression rc=$?" >> "$OUT/progress.log"
mv $SCRATCH/regression "$OUT/regression"
rm -rf $CACHE
