#!/usr/bin/env bash
# Regenerate benchmarks/results/ (quality.json, speed.json, psnr_vs_latency.png, summary.md) in one go.
#
#   benchmarks/run_all.sh [MODEL.keras]
#
# With MODEL, first (re)make the artifacts from it (out/benchmarks/artifacts/{deconv,subpixel}); without, use
# the artifacts already there, else the models shipped in edge_runtime/models. The peer (OpenCV dnn_superres)
# runs in .venv-peer, made on first use (pip, from PyPI) and reused afterwards. Run on a quiet machine:
# every case is interleaved with the others, but other load still widens the spread.
# Extra arguments for the speed run: SPEED_ARGS="--runs 50" benchmarks/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export BENCH_COMMAND="benchmarks/run_all.sh${1:+ $1}"
export TF_CPP_MIN_LOG_LEVEL=2
if [ $# -ge 1 ]; then
  "$PY" -m benchmarks.artifacts --model "$1"
fi
"$PY" -m benchmarks.peer setup || echo "warning: continuing without the peer's rows" >&2
"$PY" -m benchmarks.quality
# shellcheck disable=SC2086
"$PY" -m benchmarks.speed ${SPEED_ARGS:-}
"$PY" -m benchmarks.report
