"""``deconv-edge convert``: a trained ``.keras`` model → gated TFLite/ONNX artifacts with manifests.

Module level stays light (no TensorFlow): ``--help`` lists the formats from the registry, which imports
nothing heavy.
"""

from __future__ import annotations

import argparse
import sys

from deconv_edge_core.commands import command, require_train_extra


def _formats_help() -> str:
    from .exporters import EXPORTERS

    rows = []
    for key in EXPORTERS:
        exp = EXPORTERS.get(key)
        opts = "; options: " + ", ".join(f"{o.name}={'|'.join(o.choices) or o.default} (default {o.default})"
                                         for o in exp.options) if exp.options else ""
        rows.append(f"{key} ({exp.description}{opts})")
    return "; ".join(rows)


@command
class ConvertCommand:
    name = "convert"
    help = "export a .keras model to TFLite/ONNX artifacts, each checked by an accuracy gate"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        from .exporters import EXPORTERS

        p.add_argument("model", metavar="MODEL.keras", help="trained model (from 'deconv-edge train')")
        p.add_argument("--formats", default="all", metavar="LIST",
                       help=f"comma-separated formats or 'all' (default). Formats: {_formats_help()}")
        p.add_argument("--calib", action="append", default=[], metavar="DIR",
                       help="calibration pictures (repeatable; needed by " +
                            ", ".join(k for k in EXPORTERS if EXPORTERS.get(k).needs_calibration) + ")")
        p.add_argument("--eval", action="append", default=[], required=True, metavar="DIR",
                       help="ground-truth pictures for the accuracy gate (repeatable)")
        p.add_argument("--out", required=True, metavar="DIR", help="output folder")
        p.add_argument("--input-size", metavar="HxW",
                       help="fixed input size, e.g. 240x320 (default: dynamic where the format allows; "
                            "edgetpu 240x320)")
        p.add_argument("--upsampler", default="auto", choices=("auto", "deconv", "subpixel"),
                       help="auto (default): sub-pixel for CPU/GPU formats, deconvolution for edgetpu")
        p.add_argument("--max-psnr-drop", type=float, metavar="DB",
                       help="override the PSNR-drop gates (default fp16 0.05 dB, int8/dynamic/edgetpu 0.3 dB)")
        p.add_argument("--calib-samples", type=int, default=128, metavar="N",
                       help="calibration crops (default 128, at least 100)")
        p.add_argument("--option", action="append", default=[], metavar="FORMAT.NAME=VALUE",
                       help="per-format option, e.g. tflite-int8.io_dtype=int8 (repeatable)")
        p.add_argument("--threads", type=int, metavar="N", help="CPU threads for the gate's runtime")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        require_train_extra("deconv-edge convert")
        from deconv_edge_core.errors import UserError

        from .api import ExportConfig, convert, parse_formats, parse_input_size, parse_option
        from .calibration import MIN_CALIB_SAMPLES

        parse_formats(args.formats)  # fail fast, before TensorFlow is imported
        from deconv_edge_train.quiet import import_tensorflow

        import_tensorflow()
        if args.calib_samples < MIN_CALIB_SAMPLES:
            raise UserError(f"--calib-samples {args.calib_samples} is too few: use at least {MIN_CALIB_SAMPLES}")
        config = ExportConfig(
            input_size_hw=parse_input_size(args.input_size) if args.input_size else None,
            upsampler=args.upsampler, max_psnr_drop_db=args.max_psnr_drop, calib_samples=args.calib_samples,
            options=tuple(parse_option(o) for o in args.option), threads=args.threads)
        from deconv_edge_core.live import LiveLine

        live = LiveLine(min_interval_s=0.0)  # a terminal sees the stage of each artifact; logs only the results
        report = convert(args.model, args.formats, args.calib, args.eval, args.out, config, progress=live.say,
                         stage=live.update)
        live.clear()
        bad = [a.format for a in report.artifacts if a.status != "passed"]
        print(f"report: {args.out}/report.md")
        if bad:
            print(f"error: {len(bad)} artifact(s) failed: {', '.join(bad)} (see {args.out}/report.md)", file=sys.stderr)
            return 1
        return 0
