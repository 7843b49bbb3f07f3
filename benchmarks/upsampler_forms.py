"""``python -m benchmarks.upsampler_forms --model M.keras``: what the upsampler form costs, like with like.

The two forms of the trained upsampler (TRANSPOSE_CONV, and CONV_2D + DEPTH_TO_SPACE) are exported in fp32
and int8 TFLite, each with a static input shape (240x320) and a dynamic one, and all eight files run in one
interleaved ``bench`` run (the frame path, 320x240 frames). A form is only ever compared with the other form
of the same precision and the same shape kind: XNNPACK delegates a static TRANSPOSE_CONV but leaves a dynamic
one on LiteRT's built-in kernel, which a comparison across shape kinds would blame on the form. Each row names
the deconvolution file's delegate coverage, so the reason is on the page.

Writes ``benchmarks/results/upsampler_forms.json`` and ``upsampler_forms.md``. Needs the ``[train]`` extra.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .common import RESULTS_DIR, SHARED, command_line, run_id, say

SCHEMA = "deconv-edge-upsampler-forms/1"
FORMS = ("deconv", "subpixel")
PRECISIONS = (("fp32", "tflite-fp32"), ("int8", "tflite-int8"))
SHAPES = ("static", "dynamic")


def pair_rows(rows: list) -> list:
    """One comparison per (precision, shape kind, threads): the deconvolution row against the sub-pixel row of
    the *same* precision and shape kind, never across them."""
    by = {(r["precision"], r["shape"], r["threads"], r["form"]): r for r in rows}
    out = []
    for (precision, shape, threads, form), deconv in by.items():
        sub = by.get((precision, shape, threads, "subpixel"))
        if form != "deconv" or sub is None:
            continue
        ratio = deconv["frame_p50_ms"] / sub["frame_p50_ms"] if deconv["frame_p50_ms"] and sub["frame_p50_ms"] else None
        out.append({"precision": precision, "shape": shape, "threads": threads, "deconv_ms": deconv["frame_p50_ms"],
                    "subpixel_ms": sub["frame_p50_ms"], "ratio": ratio, "deconv_coverage": deconv["coverage"],
                    "subpixel_coverage": sub["coverage"]})
    return sorted(out, key=lambda c: (c["threads"], [p for p, _ in PRECISIONS].index(c["precision"]),
                                      SHAPES.index(c["shape"])))


def markdown(result: dict) -> str:
    """The README's table: one line per (threads, precision, shape kind)."""
    from deconv_edge_core.text import markdown_table

    head = ["threads", "precision", "input shape", "TRANSPOSE_CONV ms", "CONV_2D + DEPTH_TO_SPACE ms",
            "deconv ÷ sub-pixel", "deconv file: XNNPACK coverage"]
    rows = [head] + [[str(c["threads"]), c["precision"], c["shape"], f"{c['deconv_ms']:.2f}", f"{c['subpixel_ms']:.2f}",
                      f"{c['ratio']:.2f}" if c["ratio"] else "-", c["deconv_coverage"] or "-"]
                     for c in result["comparisons"]]
    return (f"Upsampler forms, run `{result['run_id']}` ({result['created']}), `{result['command']}`; "
            f"{result['cpu_kind']}; whole frame path p50, {result['frame']} frames, {result['runs']} runs, "
            "interleaved\n\n" + markdown_table(rows, numbers_right_from=3) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.upsampler_forms", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="trained .keras model")
    p.add_argument("--size", default="240x320", help="HxW: the static files' input and the frame (240x320)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--calib", default=None, help="calibration folder (default: ../shared T91, else builtin)")
    p.add_argument("--calib-samples", type=int, default=16,
                   help="calibration crops (16: these files are timed, not scored; a 240x320 crop set of the "
                        "shipped 128 takes half an hour to calibrate on a 2-core machine)")
    p.add_argument("--out", default=str(RESULTS_DIR / "upsampler_forms.json"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    from deconv_edge_convert.api import ExportConfig, export_one
    from deconv_edge_core.fsutil import write_json_atomic, write_text_atomic
    from edge_runtime.bench.cli import make_progress
    from edge_runtime.bench.config import CaseSpec, parse_input_size, parse_threads
    from edge_runtime.bench.fingerprint import device_fingerprint
    from edge_runtime.bench.ipc import SubprocessCase
    from edge_runtime.bench.schedule import run_groups

    size, threads = parse_input_size(args.size), parse_threads(args.threads)
    t91 = SHARED / "data" / "sr" / "train" / "t91"
    calib = [args.calib or (str(t91) if t91.is_dir() else "builtin")]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="forms-") as tmp:
        files = []
        for precision, key in PRECISIONS:
            for shape in SHAPES:
                for form in FORMS:
                    cfg = ExportConfig(upsampler=form, input_size_hw=size if shape == "static" else None, batch=1,
                                       calib_samples=args.calib_samples)
                    say(f"upsampler_forms: exporting {key} {form} {shape}")
                    path = export_one(args.model, key, Path(tmp) / f"{key}-{form}-{shape}", cfg, calib=calib)
                    files.append(((precision, shape, form), path))
        device = device_fingerprint()

        def cases(t: int) -> list:
            return [SubprocessCase(CaseSpec(kind="artifact", label=f"{p} {form} {shape}", threads=t, input_hw=size,
                                            artifact=str(path), backend="litert"))
                    for (p, shape, form), path in files]

        results = run_groups([(f"{t}T", cases(t)) for t in threads], args.runs, args.warmup,
                             make_progress(args.quiet))
    rows = []
    for r in results:
        precision, form, shape = r.label.split()
        rows.append({"precision": precision, "form": form, "shape": shape, "threads": r.threads,
                     "frame_p50_ms": r.frame.p50_ms if r.frame else None,
                     "model_p50_ms": r.model.p50_ms if r.model else None, "ops": r.ops,
                     "coverage": (r.coverage or {}).get("summary"), "error": r.error})
    result = {"schema": SCHEMA, "run_id": run_id(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": command_line(), "model": str(args.model), "frame": f"{size[1]}x{size[0]}",
              "runs": args.runs, "warmup": args.warmup, "device": device.to_dict(), "cpu_kind": device.cpu_kind(),
              "warnings": device.warnings(), "rows": rows, "comparisons": pair_rows(rows),
              "wall_s": time.perf_counter() - t0}
    out = Path(args.out)
    write_json_atomic(out, result)
    write_text_atomic(out.with_suffix(".md"), markdown(result))
    say(f"wrote {out} and {out.with_suffix('.md')} ({time.perf_counter() - t0:.0f} s)")
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
