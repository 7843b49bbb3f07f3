#!/usr/bin/env bash
# Regenerate benchmarks/results/ in one named run (BENCH_RUN_ID): every table of the README comes from it.
#
#   benchmarks/run_all.sh [MODEL.keras]
#
# With MODEL, first (re)make the artifacts from it (out/benchmarks/artifacts/{deconv,subpixel}); without, use
# the artifacts already there, else the models shipped in edge_runtime/models. Then, all under one run id:
#   quality.json, speed.json        x2: every format and upsampler form of MODEL, the shipped fast x2 model,
#                                   the peer, bicubic, the MAC-rate references
#   speed_shipped_x{2,3,4}.json     the shipped models per scale, with the peer of that scale (320x240, 1 and 2 T)
#   quality_shipped_x{3,4}.json     their quality (x2's is in quality.json)
#   shipped.json / shipped.md       the shipped-models table (benchmarks.shipped)
#   edge_runtime/models/*.json      reference_latency, the 1-thread 320x240 p50 (benchmarks.stamp_latency)
#   upsampler_forms.json / .md      the two upsampler forms, static against static, dynamic against dynamic
#   summary.md, psnr_vs_latency.png benchmarks.report
# The peer (OpenCV dnn_superres) runs in .venv-peer, made on first use (pip, from PyPI) and reused afterwards.
# Run on a quiet machine: every case is interleaved with the others, but other load still widens the spread.
# Extra arguments for the speed runs: SPEED_ARGS="--runs 50" benchmarks/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export BENCH_COMMAND="benchmarks/run_all.sh${1:+ $1}"
export TF_CPP_MIN_LOG_LEVEL=2
# One run id for every step: benchmarks.report only puts results of one run into one table.
export BENCH_RUN_ID="${BENCH_RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-run_all}"
gate=0
if [ $# -ge 1 ]; then
  # Exit status 1 = some artifact failed its gate: benchmark it anyway (labelled), but end non-zero.
  "$PY" -m benchmarks.artifacts --model "$1" || gate=$?
  [ "$gate" -le 1 ] || exit "$gate"
fi
"$PY" -m benchmarks.peer setup || echo "warning: continuing without the peer's rows" >&2
ARTS=(out/benchmarks/artifacts edge_runtime/models/fsrcnn-s_x2_int8.tflite)
[ -d out/benchmarks/artifacts ] || ARTS=(edge_runtime/models)
R=benchmarks/results
"$PY" -m benchmarks.quality --artifacts "${ARTS[@]}"
# shellcheck disable=SC2086
"$PY" -m benchmarks.speed --artifacts "${ARTS[@]}" --quiet ${SPEED_ARGS:-}
for s in 2 3 4; do
  # shellcheck disable=SC2086
  "$PY" -m benchmarks.speed --artifacts edge_runtime/models --scale "$s" --sizes 240x320 --threads 1,2 --quiet \
    --out "$R/speed_shipped_x$s.json" ${SPEED_ARGS:-}
done
for s in 3 4; do
  "$PY" -m benchmarks.quality --artifacts edge_runtime/models --scale "$s" --out "$R/quality_shipped_x$s.json"
done
"$PY" -m benchmarks.shipped --speed "$R"/speed_shipped_x{2,3,4}.json
# The shipped manifests' reference latency ('deconv-edge models') from this run too.
"$PY" -m benchmarks.stamp_latency "$R"/speed_shipped_x{2,3,4}.json --threads 1
if [ $# -ge 1 ]; then
  "$PY" -m benchmarks.upsampler_forms --model "$1" --quiet
fi
"$PY" -m benchmarks.report
if [ "$gate" -ne 0 ]; then
  echo "error: some artifacts failed their accuracy gate (see out/benchmarks/artifacts/*/report.md)" >&2
fi
exit "$gate"
