#!/usr/bin/env bash
# S3IMFusion full paper recipe (whole 256x256 pairs, batch 16, 100 epochs) for one task on the CPU,
# one torch thread, lowest priority:  bash training_runs/run_s3imfusion.sh ct-mri|pet-mri|spect-mri
# Resumable: run it again; it continues from the newest checkpoint (epoch end or mid-epoch) in
# training_runs/s3imfusion_<task>/. Console output is appended to that folder's console.txt.
set -euo pipefail
task=${1:?usage: run_s3imfusion.sh ct-mri|pet-mri|spect-mri}
cd "$(dirname "$0")/.."
out=training_runs/s3imfusion_$task
resume=()
if compgen -G "$out/last_checkpoint_*.pt" > /dev/null || compgen -G "$out/mid_checkpoint_*.pt" > /dev/null; then
  resume=(--resume)
fi
mkdir -p "$out"
exec nice -n 19 env OMP_NUM_THREADS=1 python -m medfuse train "pipelines/s3imfusion_$task.json" \
  device=cpu trainer#threads=1 trainer#amp=off trainer#tensorboard=false \
  trainer#checkpoint_every_n_iterations=3 -o "$out" --no-progress "${resume[@]}" >> "$out/console.txt" 2>&1
