#!/usr/bin/env bash
# The device stacks this machine can reach, each in its own runtime-only venv: install, runtime tests, smoke.
#   legacy     tflite-runtime 2.14 + numpy<2 (OpenCV 4.11): old Raspberry Pi OS / Coral images
#   py38       pyenv's 3.8 with ONNX Runtime and tflite-runtime: JetPack 5 (ai-edge-litert has no 3.8 wheels)
#   py39 py310 pyenv's 3.9 / 3.10 with LiteRT and ONNX Runtime
#   debian311  Debian's /usr/bin/python3.11 (3.11.2, as on Raspberry Pi OS Bookworm: no tarfile filter=)
# Usage: tests/stacks.sh [STACK...]   (default: every stack whose Python is here; others are listed as skipped)
# A stack whose install fails while the package index cannot be reached is listed as skipped with a warning
# (exit 0: CI without network); an install failure with the index reachable, a test or a smoke failure fails.
# Each venv (.venv-stack-NAME) is made once and remade when pyproject.toml changes; the table at the end
# gives each step's seconds (the README's stack table comes from it).
set -uo pipefail
cd "$(dirname "$0")/.."
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}

python_for() {
  case $1 in
    legacy) command -v python3.11 || command -v python3 ;;
    py38) ls -d "$PYENV_ROOT"/versions/3.8.*/bin/python 2>/dev/null | tail -1 ;;
    py39) ls -d "$PYENV_ROOT"/versions/3.9.*/bin/python 2>/dev/null | tail -1 ;;
    py310) ls -d "$PYENV_ROOT"/versions/3.10.*/bin/python 2>/dev/null | tail -1 ;;
    debian311) [ -x /usr/bin/python3.11 ] && /usr/bin/python3.11 -c "import ensurepip" 2>/dev/null \
                 && echo /usr/bin/python3.11 ;;
  esac
}
extras_for() {
  case $1 in legacy) echo legacy ;; py38) echo onnx,legacy ;; *) echo edge,onnx ;; esac
}

stacks=("$@")
[ ${#stacks[@]} -gt 0 ] || stacks=(legacy py38 py39 py310 debian311)
rows=()
failed=0
# index_reachable PYTHON: can pip's index (PIP_INDEX_URL, pip's configuration, or PyPI) be reached from here?
index_reachable() {
  "$1" - <<'PY' >/dev/null 2>&1
import os, subprocess, sys, urllib.request
url = os.environ.get("PIP_INDEX_URL") or subprocess.run(
    [sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True, text=True).stdout.strip()
urllib.request.urlopen((url or "https://pypi.org/simple").rstrip("/") + "/pip/", timeout=20).close()
PY
}
for s in "${stacks[@]}"; do
  py=$(python_for "$s")
  if [ -z "$py" ]; then
    rows+=("$s|skipped: no Python for it here (pyenv, or Debian's python3.11 + python3.11-venv)|-|-")
    continue
  fi
  venv=.venv-stack-$s
  extras=$(extras_for "$s")
  echo "== $s: $("$py" -c 'import platform; print(platform.python_version())') [$extras] in $venv"
  t0=$SECONDS
  # Install only (pytest runs below, so its time is measured on its own).
  if ! PYTHON=$py RUNTIME_VENV=$venv RUNTIME_EXTRAS=$extras bash tests/runtime_only.sh --version >/dev/null; then
    if index_reachable "$py"; then
      rows+=("$s|FAILED install|-|-"); failed=1
    else
      echo "warning: stack $s skipped: its install failed and the package index cannot be reached" >&2
      rows+=("$s|skipped: package index unreachable|-|-")
    fi
    continue
  fi
  t_install=$((SECONDS - t0)); t0=$SECONDS
  log=$(mktemp)
  PYTHON=$py RUNTIME_VENV=$venv RUNTIME_EXTRAS=$extras bash tests/runtime_only.sh tests/edge_runtime -p no:cacheprovider \
    | tee "$log" | tail -1
  rc=${PIPESTATUS[0]}
  summary=$(grep -E "^[0-9]+ (passed|failed)" "$log" | tail -1)
  rm -f "$log"
  t_tests=$((SECONDS - t0)); t0=$SECONDS
  [ "$rc" = 0 ] || failed=1
  if bash tests/smoke.sh "$venv" "out/smoke-$s"; then smoke="passed ($((SECONDS - t0)) s)"; else smoke="FAILED"; failed=1; fi
  rows+=("$s|$("$venv/bin/python" -c 'import platform; print(platform.python_version())') [$extras]: ${t_install} s|${summary:-no summary} (${t_tests} s)|$smoke")
done
echo
echo "| stack | install | runtime tests | smoke |"
echo "| --- | --- | --- | --- |"
for r in "${rows[@]}"; do echo "| ${r//|/ | } |"; done
exit $failed
