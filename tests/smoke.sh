#!/usr/bin/env bash
# The device smoke: what a person runs first on a new device, each step a real command of the installed runtime.
#   doctor; enhance a picture; bench the default model; record demo:// to a file, then camera on that file.
# Usage: tests/smoke.sh VENV OUT_DIR        (VENV/bin/deconv-edge and VENV/bin/python are used)
# Prints one "smoke: ..." line per step with its time; exits non-zero at the first failure.
set -euo pipefail
VENV=${1:?usage: tests/smoke.sh VENV OUT_DIR}
OUT=${2:?usage: tests/smoke.sh VENV OUT_DIR}
DCE="$VENV/bin/deconv-edge"
PY="$VENV/bin/python"
mkdir -p "$OUT"
export TF_CPP_MIN_LOG_LEVEL=2

step() {  # step NAME CMD...: run, log to OUT/NAME.log, print the time
  local name=$1; shift
  local t0=$SECONDS
  if ! "$@" >"$OUT/$name.log" 2>&1; then
    echo "smoke: $name FAILED after $((SECONDS - t0)) s; its output:" >&2
    tail -20 "$OUT/$name.log" >&2
    exit 1
  fi
  echo "smoke: $name ok ($((SECONDS - t0)) s)"
}

step doctor "$DCE" doctor
"$PY" - "$OUT/in.png" <<'EOF'
import sys, cv2, numpy as np
y, x = np.mgrid[0:60, 0:80]
img = np.stack([(x * 3) % 256, (y * 4) % 256, ((x + y) * 2) % 256], -1).astype(np.uint8)
cv2.imwrite(sys.argv[1], img)
EOF
step enhance "$DCE" enhance "$OUT/in.png" -o "$OUT/out.png"
"$PY" -c "import cv2, sys; im = cv2.imread(sys.argv[1]); assert im is not None and im.shape[:2] == (120, 160), im" \
  "$OUT/out.png"
model=$("$PY" -c "from edge_runtime.inference.default_model import default_model; print(default_model())")
step bench "$DCE" bench "$model" --threads 1 --runs 3 --warmup 1 --input-size 60x80 --json "$OUT/bench.json" --quiet
step record "$DCE" camera --source "demo://?size=80x60&fps=10" --sink "$OUT/clip.avi" --max-frames 12
step camera "$DCE" camera --source "$OUT/clip.avi" --sink null --stats-json "$OUT/camera-stats.json"
"$PY" - "$OUT/camera-stats.json" "$OUT/clip.avi" <<'EOF'
import json, sys, cv2
stats = json.load(open(sys.argv[1]))
# The recording is paced to the clip's frame rate (video/recording.py's FramePacer): on a loaded machine two
# demo frames can land in one tick and one is dropped, so count what the file really holds.
cap = cv2.VideoCapture(sys.argv[2])
n = 0
while cap.read()[0]:
    n += 1
cap.release()
assert n >= 10 and stats["frames"] == n, (n, stats)
print(f"smoke: camera read every frame of the file: {stats['frames']} of {n} frames at {stats['fps']} FPS")
EOF
echo "smoke: all steps passed"
