#!/usr/bin/env bash
# Set up (with test tools) and run the test suite. Extra arguments go to pytest, e.g.
#   bash Script/run_tests.sh -m "not slow"     the quick tests only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash Script/setup_env.sh --test
exec .venv/bin/python -m pytest "$@"
