#!/usr/bin/env bash
# Run the experiment's model over a video and write <experiment>/demo/output.avi and
# predictions.json.
#   bash Script/run_demo_m.sh --video PATH [--onnx <experiment>/export/model.onnx]
#        [--window FRAMES] [--stride FRAMES] [--cfg FILE ...] [KEY VALUE ...]
# or over live video (a webcam index, a stream URL, or a file with --realtime), writing
# <experiment>/demo/stream.jsonl (docs/live_video.md):
#   bash Script/run_demo_m.sh --stream SOURCE [--show] [--save-video] [--max-seconds S] ...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PY" demo.py "$@"
