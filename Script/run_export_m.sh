#!/usr/bin/env bash
# Export the experiment's best checkpoint to torch.export and ONNX, checked against PyTorch.
#   bash Script/run_export_m.sh [--cfg FILE ...] [--checkpoint PATH] [--opset 18]
#        [--exporter dynamo|torchscript] [--int8 [--calib-clips 64] [--int8-min-agreement 0.9]]
#        [--torchscript] [KEY VALUE ...]
# Writes <experiment>/export/{model.pt2,model.onnx,labels.txt,meta.json}; --int8 adds
# model_int8.onnx (calibrated on validation clips), --torchscript adds model.ts.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PY" export_model.py "$@"
