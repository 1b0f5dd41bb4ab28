# Sourced by the run_*.sh scripts: run from the repository root with DLAC's Python.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -n "${DLAC_PYTHON:-}" ]; then
  PY=$DLAC_PYTHON
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=python3
fi
