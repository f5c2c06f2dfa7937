#!/usr/bin/env bash
# ECFusion with the paper's training signal on the CPU until a GPU is lent: the CPU-reduced recipe
# (pipelines/cpu_reduced_ecfusion.json + _randpatch: one random 128x128 masked patch per pair and
# epoch, VGG16 perceptual substitute), one torch thread, lowest priority, EPOCHS epochs (default 30):
#   bash training_runs/run_ecfusion_cpu.sh ct-mri|pet-mri|spect-mri [EPOCHS] [KEY=VALUE|CONFIG...]
# Extra arguments go to `medfuse train` after the recipe (more overlays or overrides); RUN_DIR
# overrides the run folder. The PET-MRI and SPECT-MRI runs with the black-background perceptual
# form (docs/training.md):
#   RUN_DIR=training_runs/ecfusion_pet-mri_cpu_unit bash training_runs/run_ecfusion_cpu.sh \
#     pet-mri 20 loss#vgg_subtract_mean=false loss#feature_norm=unit
# Resumable: run it again; it continues from the newest checkpoint (epoch end or every 10 steps) in
# the run folder (default training_runs/ecfusion_<task>_cpu/). Console output is appended to that
# folder's console.txt.
set -euo pipefail
task=${1:?usage: run_ecfusion_cpu.sh ct-mri|pet-mri|spect-mri [EPOCHS] [KEY=VALUE|CONFIG...]}
epochs=${2:-30}
shift $(( $# >= 2 ? 2 : $# ))
exec bash "$(dirname "$0")/train_cpu.sh" "${RUN_DIR:-training_runs/ecfusion_${task}_cpu}" \
  "pipelines/ecfusion_$task.json" pipelines/cpu_reduced_ecfusion.json \
  pipelines/cpu_reduced_ecfusion_randpatch.json "trainer#max_epochs=$epochs" \
  trainer#checkpoint_every_n_iterations=10 "$@"
