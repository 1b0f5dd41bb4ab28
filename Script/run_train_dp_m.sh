#!/usr/bin/env bash
# Train on one machine: CPU, one GPU, or nn.DataParallel over the config's GPUS.
#   bash Script/run_train_dp_m.sh [--cfg FILE ...] [--resume auto|PATH|''] [KEY VALUE ...]
# e.g. bash Script/run_train_dp_m.sh GPUS "[0,1]" TRAIN.EPOCHS 30 EXP_TAG my_run
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PY" train.py "$@"
