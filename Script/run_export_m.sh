#!/usr/bin/env bash
# Export the experiment's best checkpoint to TorchScript and ONNX, checked against PyTorch.
#   bash Script/run_export_m.sh [--cfg FILE ...] [--checkpoint PATH] [--opset 17] [KEY VALUE ...]
# Writes <experiment>/export/{model.ts,model.onnx,labels.txt,meta.json}.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PY" export_model.py "$@"
