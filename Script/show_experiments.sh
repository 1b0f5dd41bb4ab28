#!/usr/bin/env bash
# Every run under SNAPSHOT_ROOT/ar_output in one table (the original DLAC's "Experiment Show"):
#   bash Script/show_experiments.sh [SNAPSHOT_ROOT] [--html FILE] [--csv FILE] [--dataset NAME] [--model NAME]
# e.g. bash Script/show_experiments.sh output --html output/experiments.html
# Paths are taken from where you run it; SNAPSHOT_ROOT defaults to config.py's.
set -euo pipefail
export DLAC_CALLER_DIR="$PWD"
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PY" -m utils.experiment_table "$@"
