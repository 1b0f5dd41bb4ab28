#!/usr/bin/env bash
# Set up DLAC's Python environment in .venv (idempotent: a second run only checks).
#   bash Script/setup_env.sh            runtime packages, the exact versions of requirements.lock
#   bash Script/setup_env.sh --test     plus the test tools (requirements-test.txt, exact too)
#   bash Script/setup_env.sh --latest   the newest versions requirements.txt allows instead of
#                                       the lock (what Script/run_tests.sh --latest tests)
# requirements.lock holds the exact version of every package the test suite passed with (made by
# pip-tools' pip-compile: docs/getting_started.md, "The lock file"), so a fresh machine gets what
# CI tested, whatever the registry serves that day. The venv sees the base Python's packages
# (--system-site-packages): a torch you already have (a CUDA build, say) is kept as it is, with
# its own dependencies; only when no torch can be imported is the lock's CPU wheel
# torch==2.13.0 installed. PYTHON=/path/to/python picks the base interpreter (default python3),
# DLAC_VENV the folder (default .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

test_tools=0 latest=0
for arg in "$@"; do
  case "$arg" in
    --test) test_tools=1 ;;
    --latest) latest=1 ;;
    *) echo "usage: bash Script/setup_env.sh [--test] [--latest]" >&2; exit 2 ;;
  esac
done
venv=${DLAC_VENV:-.venv}
base_python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv from $($base_python --version 2>&1)"
  "$base_python" -m venv --system-site-packages "$venv"
fi
py=$venv/bin/python
# pip's own exit status decides (pipefail); the grep only hides a harmless notice about
# package index folders that this machine's pip configuration names but does not have.
pip_install() {
  "$py" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } \
    || { echo "[setup] failed: pip install $*" >&2; exit 1; }
}

keep_torch=()
if "$py" -c "import torch" 2>/dev/null; then
  echo "[setup] using the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
  keep_torch=(--keep-torch)
fi
if [ "$latest" = 1 ]; then
  echo "[setup] the newest versions requirements.txt allows (not the lock)"
  [ ${#keep_torch[@]} = 1 ] || pip_install torch==2.13.0     # a newer torch would be a CUDA build
  pip_install --upgrade --upgrade-strategy eager -r requirements.txt
else
  locked=$(mktemp)
  trap 'rm -f "$locked"' EXIT
  "$py" Script/locked.py "${keep_torch[@]}" requirements.lock > "$locked"
  echo "[setup] installing requirements.lock ($(wc -l < "$locked") packages, exact versions)"
  pip_install --no-deps -r "$locked"
fi
if [ "$test_tools" = 1 ]; then
  pip_install --no-deps -r requirements-test.txt     # every dependency pinned in the file
  # the report pages are tested as a person sees them, in headless Chromium (Debian's package)
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "[setup] installing Debian's chromium (headless browser tests)"
      apt_chromium() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
      apt_chromium || { apt-get update -qq >/dev/null && apt_chromium; } \
        || echo "[setup] warning: could not install chromium; the browser tests will fail under CI" >&2
    else
      echo "[setup] note: no chromium; the browser tests need it (apt-get install chromium)" >&2
    fi
  fi
fi
"$py" -c "import torch, cv2, av, simplejpeg, easydict, tensorboardX, matplotlib, yaml, tqdm, onnx, onnxruntime" \
  || { echo "[setup] some packages failed to install; see the messages above" >&2; exit 1; }
if [ "$test_tools" = 1 ]; then
  # found, not imported: timm and pytorchvideo import torchvision, which the tests stand in for
  "$py" -c "import importlib.util as u, sys; missing = [m for m in ('pytest', 'pytest_timeout', 'hypothesis', 'skvideo', 'timm', 'pretrainedmodels', 'pytorchvideo', 'fvcore', 'mmaction', 'mmengine', 'mmcv') if u.find_spec(m) is None]; sys.exit(f'missing: {missing}' if missing else 0)" \
    || { echo "[setup] the test tools failed to install; see the messages above" >&2; exit 1; }
fi
# the JPEG region decoder (datasets/jpeg_region.c): a C compiler and libjpeg's headers; without
# them the loaders decode whole frames, the same clips, slower
build_region_decoder() { "$py" -c "import sys; from datasets.jpeg_region import main; sys.exit(main(['--build', '--strict']))"; }
if ! build_region_decoder; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing a C compiler and libjpeg's headers (the JPEG region decoder)"
    apt_jpeg() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev libjpeg-dev >/dev/null; }
    apt_jpeg || { apt-get update -qq >/dev/null && apt_jpeg; } || true
  fi
  build_region_decoder || true
fi
echo "[setup] ready: $("$py" -c 'import torch; print("torch", torch.__version__)')"
