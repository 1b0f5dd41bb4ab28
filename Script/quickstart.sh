#!/usr/bin/env bash
# The main job: set up, render the synthetic dataset (first use), train TSN-ResNet18, evaluate
# it, export it (torch.export + ONNX, checked) and render a demo video with its predictions.
# KEY VALUE arguments go to every step.
#   bash Script/quickstart.sh [KEY VALUE ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash Script/setup_env.sh
start=$(date +%s)
bash Script/run_train_dp_m.sh "$@"
bash Script/run_evaluate_m.sh "$@"
bash Script/run_export_m.sh "$@"
# the demo input: the first rendered validation video
source Script/_python.sh
video=$("$PY" - "$@" <<'PY'
import os.path as osp, sys
from config import parse_config
from datasets.records import parse_metafile
cfg, _ = parse_config(sys.argv[1:])
meta = osp.join(osp.dirname(cfg.DATASET.VAL_META_PATH), 'val_split1_video.txt')
print(osp.join(cfg.DATASET.VIDEO_SEQ_PATH, parse_metafile(meta)[0].path))
PY
)
bash Script/run_demo_m.sh --video "$video" "$@"
bash Script/show_experiments.sh          # every run so far, in the seed's table
echo "[quickstart] trained, evaluated, exported and ran the demo in $(( $(date +%s) - start ))s;" \
     "results under output/ar_output/ (eval/report.html: the run on one page; export/, demo/output.avi)"
