#!/usr/bin/env bash
# Evaluate an experiment's best.pth with multi-view testing (EXP_TYPE 'E').
#   bash Script/run_evaluate_m.sh [--cfg FILE ...] [--checkpoint PATH] [KEY VALUE ...]
# e.g. bash Script/run_evaluate_m.sh VAL.NUM_CROPS 10 VAL.NUM_SEGMENTS 25
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PY" evaluate.py "$@"
