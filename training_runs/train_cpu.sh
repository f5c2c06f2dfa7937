#!/usr/bin/env bash
# Shared by the run_*.sh scripts: `medfuse train` on the CPU with one torch thread at the lowest
# priority into OUT, resuming from the newest checkpoint there (epoch end or mid-epoch) when there
# is one; console output appended to OUT/console.txt.
#   bash training_runs/train_cpu.sh OUT CONFIG [CONFIG...] [KEY=VALUE...]
set -euo pipefail
out=${1:?usage: train_cpu.sh OUT CONFIG [CONFIG...] [KEY=VALUE...]}
shift
cd "$(dirname "$0")/.."
resume=()
if compgen -G "$out/last_checkpoint_*.pt" > /dev/null || compgen -G "$out/mid_checkpoint_*.pt" > /dev/null; then
  resume=(--resume)
fi
mkdir -p "$out"
exec nice -n 19 env OMP_NUM_THREADS=1 python -m medfuse train "$@" \
  device=cpu trainer#threads=1 trainer#tensorboard=false \
  -o "$out" --no-progress "${resume[@]}" >> "$out/console.txt" 2>&1
