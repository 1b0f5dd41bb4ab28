#!/usr/bin/env bash
# The time-reversed-pairs experiment on the synthetic set: train and evaluate TSN and each
# temporal model (small depths, CPU-sized), then print how each does on the paired classes.
# A model that sees frame order separates move_left/move_right, grow/shrink and
# rotate_clockwise/rotate_counterclockwise; TSN with average consensus stays near 50% within
# a pair. 48 px crops, 30 epochs: about 20-35 minutes per model on a 2-core CPU.
#   bash Script/run_temporal_pairs.sh [MODEL ...]      (default: tsn tsm i3d slowfast mfnet3d)
#   extra KEY VALUE overrides for every run: PAIRS_OVERRIDES="TRAIN.EPOCHS 3" bash ...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(tsn tsm i3d slowfast mfnet3d)
common="EXP_TAG pairs DATASET.SCALE_SIZE 54 DATASET.CROP_SIZE 48 MODEL.DROPOUT 0.2 TRAIN.BASE_LR 0.02 TRAIN.EPOCHS 30 TRAIN.LR_STEPS [20,26]"
declare -A recipe=(
  [tsn]="MODEL_NAME tsn BACKBONE resnet18"
  [tsm]="MODEL_NAME tsm BACKBONE resnet18 DATA.NUM_SEGMENTS 8"
  [i3d]="MODEL_NAME i3d BACKBONE resnet18 DATA.CLIP_LEN 8 DATA.FRAME_INTERVAL 4 VAL.NUM_CLIPS 3 VAL.NUM_CROPS 1"
  [slowfast]="MODEL_NAME slowfast BACKBONE resnet18 MODEL.SLOWFAST_ALPHA 4 DATA.CLIP_LEN 16 DATA.FRAME_INTERVAL 2 VAL.NUM_CLIPS 3 VAL.NUM_CROPS 1"
  [mfnet3d]="MODEL_NAME mfnet3d BACKBONE mfnet3d DATA.CLIP_LEN 16 DATA.FRAME_INTERVAL 2 VAL.NUM_CLIPS 3 VAL.NUM_CROPS 1"
  [x3d]="MODEL_NAME x3d BACKBONE x3d_s DATA.CLIP_LEN 13 DATA.FRAME_INTERVAL 2 VAL.NUM_CLIPS 3 VAL.NUM_CROPS 1"
)
folders=()
for model in "${models[@]}"; do
  [ -n "${recipe[$model]:-}" ] || { echo "unknown model '$model'; choose from ${!recipe[*]}" >&2; exit 2; }
  # shellcheck disable=SC2086  # word splitting of the KEY VALUE lists is intended
  "$PY" train.py ${recipe[$model]} $common ${PAIRS_OVERRIDES:-}
  # shellcheck disable=SC2086
  "$PY" evaluate.py ${recipe[$model]} $common ${PAIRS_OVERRIDES:-}
  folders+=("$("$PY" -c "import config; config.merge_list('''${recipe[$model]} $common ${PAIRS_OVERRIDES:-}'''.split()); print(config.exp_dir())")")
done
"$PY" -m DataTool.Synthetic.pairs_table "${folders[@]}"
