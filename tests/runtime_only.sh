#!/usr/bin/env bash
# Run tests/edge_runtime in a runtime-only virtual environment: numpy, OpenCV, LiteRT and ONNX Runtime
# (what 'pip install deconv-edge[edge,onnx]' gives a device), and no TensorFlow.
# The venv (.venv-runtime) is made once and reinstalled only when pyproject.toml changes.
# Usage: tests/runtime_only.sh [pytest args...]
# Another stack: PYTHON=/usr/bin/python3.11 RUNTIME_VENV=.venv-x RUNTIME_EXTRAS=onnx,legacy (see tests/stacks.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${RUNTIME_VENV:-.venv-runtime}
EXTRAS=${RUNTIME_EXTRAS:-edge,onnx}
STAMP="$VENV/.installed-$(cksum pyproject.toml | cut -d' ' -f1)-${EXTRAS//,/-}"
if [ ! -f "$STAMP" ]; then
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]" pytest pytest-timeout
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
if "$VENV/bin/python" -c "import tensorflow" >/dev/null 2>&1; then
  echo "error: $VENV can import tensorflow, so it is not runtime-only; remove it (rm -rf $VENV) and rerun" >&2
  exit 1
fi
export DECONV_EDGE_RUNTIME_ONLY=1
exec "$VENV/bin/python" -m pytest -q "${@:-tests/edge_runtime}"
