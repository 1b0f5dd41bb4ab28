#!/usr/bin/env bash
# Run the experiment's model over a video and write <experiment>/demo/output.avi and
# predictions.json.
#   bash Script/run_demo_m.sh --video PATH [--onnx <experiment>/export/model.onnx]
#        [--window FRAMES] [--stride FRAMES] [--cfg FILE ...] [KEY VALUE ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PY" demo.py "$@"
