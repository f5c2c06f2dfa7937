#!/usr/bin/env bash
# S3IMFusion full paper recipe for CT-MRI (whole 256x256 pairs, batch 16, 100 epochs) on the CPU,
# one torch thread, lowest priority. Resumable: run this script again; it continues from the newest
# checkpoint (epoch end or mid-epoch) in training_runs/s3imfusion_ct-mri/. Console output is appended
# to training_runs/s3imfusion_ct-mri/console.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=training_runs/s3imfusion_ct-mri
resume=()
if compgen -G "$out/last_checkpoint_*.pt" > /dev/null || compgen -G "$out/mid_checkpoint_*.pt" > /dev/null; then
  resume=(--resume)
fi
mkdir -p "$out"
exec nice -n 19 env OMP_NUM_THREADS=1 python -m medfuse train pipelines/s3imfusion_ct-mri.json \
  device=cpu trainer#threads=1 trainer#amp=off trainer#tensorboard=false \
  trainer#checkpoint_every_n_iterations=3 -o "$out" --no-progress "${resume[@]}" >> "$out/console.txt" 2>&1
