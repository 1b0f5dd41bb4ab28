#!/usr/bin/env bash
# Set up (with test tools) and run the test suite on every core (pytest-xdist; a file's tests in
# one process, so its module fixtures are made once). Extra arguments
# go to pytest, e.g.
#   bash Script/run_tests.sh -m "not slow"     the quick tests only
#   bash Script/run_tests.sh -n 0 tests/test_loaders.py    one process, one file
#   bash Script/run_tests.sh --latest          a separate venv (.venv-latest) with the newest
#                                              versions requirements.txt allows, quick tests:
#                                              finds registry drift before users do
# DLAC_TEST_WORKERS sets the number of test processes (default: one per core).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "${1:-}" = "--latest" ]; then
  shift
  DLAC_VENV=.venv-latest bash Script/setup_env.sh --test --latest
  echo "[tests] newest allowed versions: $(.venv-latest/bin/python -m pip freeze --quiet 2>/dev/null \
    | grep -iE '^(av|numpy|opencv-python-headless|onnx|onnxruntime|simplejpeg|matplotlib)==' | tr '\n' ' ')"
  exec .venv-latest/bin/python -m pytest -n "${DLAC_TEST_WORKERS:-auto}" --dist loadfile -m "not slow" "$@"
fi
bash Script/setup_env.sh --test
exec .venv/bin/python -m pytest -n "${DLAC_TEST_WORKERS:-auto}" --dist loadfile "$@"
