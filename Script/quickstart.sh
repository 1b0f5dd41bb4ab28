#!/usr/bin/env bash
# The main job: set up, render the synthetic dataset (first use), train TSN-ResNet18 and
# evaluate it. KEY VALUE arguments go to both train.py and evaluate.py.
#   bash Script/quickstart.sh [KEY VALUE ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash Script/setup_env.sh
start=$(date +%s)
bash Script/run_train_dp_m.sh "$@"
bash Script/run_evaluate_m.sh "$@"
echo "[quickstart] trained and evaluated in $(( $(date +%s) - start ))s;" \
     "results under output/ar_output/ (see eval/report.json and eval/confusion.png)"
