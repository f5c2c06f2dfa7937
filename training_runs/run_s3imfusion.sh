#!/usr/bin/env bash
# S3IMFusion full paper recipe (whole 256x256 pairs, batch 16, 100 epochs) for one task on the CPU,
# one torch thread, lowest priority:  bash training_runs/run_s3imfusion.sh ct-mri|pet-mri|spect-mri
# Resumable: run it again; it continues from the newest checkpoint (epoch end or mid-epoch) in
# training_runs/s3imfusion_<task>/. Console output is appended to that folder's console.txt.
set -euo pipefail
task=${1:?usage: run_s3imfusion.sh ct-mri|pet-mri|spect-mri}
exec bash "$(dirname "$0")/train_cpu.sh" "training_runs/s3imfusion_$task" \
  "pipelines/s3imfusion_$task.json" trainer#amp=off trainer#checkpoint_every_n_iterations=3
