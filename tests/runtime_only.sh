#!/usr/bin/env bash
# Run tests/edge_runtime in a runtime-only virtual environment: numpy, OpenCV, LiteRT and ONNX Runtime
# (what 'pip install deconv-edge[edge,onnx]' gives a device), and no TensorFlow.
# The venv (.venv-runtime) is made once and reinstalled only when pyproject.toml changes.
# Usage: tests/runtime_only.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${RUNTIME_VENV:-.venv-runtime}
STAMP="$VENV/.installed-$(cksum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$STAMP" ]; then
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[edge,onnx]' pytest pytest-timeout
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
if "$VENV/bin/python" -c "import tensorflow" >/dev/null 2>&1; then
  echo "error: $VENV can import tensorflow, so it is not runtime-only; remove it (rm -rf $VENV) and rerun" >&2
  exit 1
fi
export DECONV_EDGE_RUNTIME_ONLY=1
exec "$VENV/bin/python" -m pytest -q "${@:-tests/edge_runtime}"
