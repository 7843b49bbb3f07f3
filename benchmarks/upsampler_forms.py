"""Latency of the two upsampler forms (TRANSPOSE_CONV vs CONV_2D + DEPTH_TO_SPACE) through the litert backend.

    python benchmarks/upsampler_forms.py MODEL.keras [--size 240x320] [--threads 2] [--runs 30]

Exports fp32 and int8 TFLite artifacts of both forms at a fixed input size (int8 calibrated on
scikit-image's photos), then times ``backend.run`` (median of ``--runs`` after warm-up). Use an idle
machine; numbers on a shared one are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--size", default="240x320", help="HxW low-resolution input")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--calib", action="append", default=None, help="calibration folder (default: builtin photos)")
    args = ap.parse_args()

    from convert.api import ExportConfig, export_one, parse_input_size
    from edge_runtime.backends import open_backend
    from edge_runtime.config import RuntimeConfig

    size = parse_input_size(args.size)
    base = ExportConfig(input_size_hw=size, calib_samples=100)
    x = np.random.default_rng(0).random((1, *size, 1)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{Path(args.model).name}, input {size[0]}x{size[1]}, litert, {args.threads} threads, "
              f"median of {args.runs}")
        for key in ("tflite-fp32", "tflite-int8"):
            # As exported ("deconv": TRANSPOSE_CONV; "subpixel": CONV_2D + DEPTH_TO_SPACE; int8 files carry the
            # int8 rewrites of convert.rewrite), plus int8 "deconv-plain": the trained graph without them.
            rows = [("deconv", "deconv", True), ("subpixel", "subpixel", True)]
            if key == "tflite-int8":
                rows.insert(1, ("deconv-plain", "deconv", False))
            for label, form, split in rows:
                cfg = dataclasses.replace(base, upsampler=form, split_concat=split)
                path = export_one(args.model, key, Path(tmp) / f"{key}-{label}", cfg, calib=args.calib)
                backend = open_backend(path, RuntimeConfig(backend="litert", threads=args.threads))
                for _ in range(3):
                    backend.run(x)
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    backend.run(x)
                    times.append((time.perf_counter() - t0) * 1000.0)
                print(f"  {key:<12} {label:<13} {statistics.median(times):8.1f} ms  (min {min(times):.1f})")


if __name__ == "__main__":
    main()
