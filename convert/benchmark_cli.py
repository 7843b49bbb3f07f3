"""``deconv-edge benchmark``: convert a model to the asked formats, then measure every artifact on this machine.

What Ultralytics users know as ``export`` + ``benchmark`` in one command: :func:`convert.api.convert` (with its
accuracy gate), then :func:`edge_runtime.bench.run_bench` on every artifact that passed, interleaved, with the
default threads (every usable core). One table, a row per artifact: format, size, PSNR, drop against the float
model, p50 latency of the whole frame path and FPS; ``benchmark.json`` beside the artifacts holds it all.
"""

from __future__ import annotations

import argparse
import sys

from deconv_edge_core.commands import command, require_train_extra

DEFAULT_FORMATS = "tflite-int8,tflite-fp32,onnx-fp32,onnx-int8"


def benchmark_rows(report, bench) -> list:
    """One dict per converted format: conversion and gate results, and the latency measured here."""
    from pathlib import Path

    measured = {Path(r.artifact).name: r for r in (bench.results if bench else ()) if r.artifact}
    rows = []
    for a in report.artifacts:
        acc = a.accuracy or {}
        r = measured.get(a.file or "")
        rows.append({"format": a.format, "file": a.file, "status": a.status, "size_bytes": a.size_bytes,
                     "psnr_db": acc.get("psnr_db"), "psnr_drop_db": acc.get("psnr_drop_db"),
                     "frame_p50_ms": r.frame.p50_ms if r is not None and r.frame else None,
                     "fps": r.frame.fps if r is not None and r.frame else None,
                     "threads": r.threads if r is not None else None,
                     "error": a.error or (r.error if r is not None else None)})
    return rows


def benchmark_table(rows: list) -> str:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = ("format", "file", "status", "KiB", "PSNR dB", "drop dB", "p50 ms", "FPS")
    cells = [head] + [(r["format"], r["file"] or "-", r["status"], num(r["size_bytes"] and r["size_bytes"] / 1024, ".1f"),
                       num(r["psnr_db"], ".2f"), num(r["psnr_drop_db"], "+.3f"), num(r["frame_p50_ms"], ".2f"),
                       num(r["fps"], ".1f")) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@command
class BenchmarkCommand:
    name = "benchmark"
    help = "convert a .keras model to the asked formats, then measure each artifact here: one table"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", metavar="MODEL.keras", help="trained model (from 'deconv-edge train')")
        p.add_argument("--formats", default=DEFAULT_FORMATS, metavar="LIST",
                       help=f"comma-separated formats or 'all' (default {DEFAULT_FORMATS}); see 'deconv-edge convert --help'")
        p.add_argument("--calib", action="append", default=[], metavar="DIR",
                       help="calibration pictures (repeatable; int8 formats need them; 'builtin' = scikit-image's)")
        p.add_argument("--eval", action="append", default=[], required=True, metavar="DIR",
                       help="ground-truth pictures for the accuracy gate (repeatable)")
        p.add_argument("--out", required=True, metavar="DIR", help="output folder (artifacts, report, benchmark.json)")
        p.add_argument("--input-size", default="240x320", metavar="HxW",
                       help="low-resolution frame the latency is measured on (default 240x320)")
        p.add_argument("--runs", type=int, default=30, help="measured frames per artifact (default 30)")
        p.add_argument("--warmup", type=int, default=3, help="unmeasured frames per artifact first (default 3)")
        p.add_argument("--calib-samples", type=int, default=128, metavar="N",
                       help="calibration crops (default 128, at least 100)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        require_train_extra("deconv-edge benchmark")
        from pathlib import Path

        from deconv_edge_core.errors import UserError
        from deconv_edge_core.fsutil import write_json_atomic
        from deconv_edge_core.live import LiveLine
        from edge_runtime.bench.config import BenchConfig, parse_input_size
        from edge_runtime.bench.runner import run_bench
        from edge_runtime.machine import usable_cores

        from .api import ExportConfig, convert, parse_formats
        from .calibration import MIN_CALIB_SAMPLES

        parse_formats(args.formats)
        input_hw = parse_input_size(args.input_size)
        if args.calib_samples < MIN_CALIB_SAMPLES:
            raise UserError(f"--calib-samples {args.calib_samples} is too few: use at least {MIN_CALIB_SAMPLES}")
        from deconv_edge_train.quiet import import_tensorflow

        import_tensorflow()
        live = LiveLine(min_interval_s=0.0)
        report = convert(args.model, args.formats, args.calib, args.eval, args.out,
                         ExportConfig(calib_samples=args.calib_samples), progress=live.say, stage=live.update)
        live.clear()
        passed = [str((Path(report.out_dir) / a.file).resolve()) for a in report.artifacts if a.status == "passed" and a.file]
        bench = None
        if passed:
            from edge_runtime.bench.cli import make_progress

            live.say(f"measuring {len(passed)} artifact(s) here: {input_hw[0]}x{input_hw[1]} frame, "
                     f"{usable_cores()} thread(s), {args.runs} runs each, interleaved")
            bench = run_bench(BenchConfig(artifacts=tuple(passed), threads=(usable_cores(),), input_hw=input_hw,
                                          runs=args.runs, warmup=args.warmup), make_progress(False),
                              command="deconv-edge benchmark " + " ".join(sys.argv[2:]))
        rows = benchmark_rows(report, bench)
        print()
        print(f"{Path(args.model).name}: float PSNR {report.float_psnr_db:.2f} dB on {report.eval_data}; latency = "
              f"whole frame path p50 on this machine")
        print(benchmark_table(rows))
        if bench is not None:
            print(f"device: {bench.device.short()}")
        out = Path(args.out) / "benchmark.json"
        write_json_atomic(out, {"model": report.model, "float_psnr_db": report.float_psnr_db,
                                "input_hw": list(input_hw), "rows": rows,
                                "bench": bench.to_dict() if bench is not None else None})
        print(f"wrote {out}")
        bad = [r["format"] for r in rows if r["status"] != "passed" or r["frame_p50_ms"] is None]
        if bad:
            print(f"error: {len(bad)} format(s) failed or were not measured: {', '.join(bad)}", file=sys.stderr)
            return 1
        return 0
