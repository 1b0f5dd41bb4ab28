#!/usr/bin/env bash
# Predict the classes of many videos with the experiment's model (predict.py).
#   bash Script/run_predict_m.sh --input PATH [--onnx FILE] [--out DIR] [--topk K] [--views CxK]
#        [--cfg FILE ...] [KEY VALUE ...]
# e.g. bash Script/run_predict_m.sh --input /data/new_videos --views 1x1 DATASET.NUM_WORKERS 4
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PY" predict.py "$@"
