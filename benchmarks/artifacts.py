"""``python -m benchmarks.artifacts --model M.keras``: the artifacts the benchmarks compare, from one model.

Every CPU format (fp32, fp16, int8 TFLite; fp32, int8 ONNX by default) in both upsampler forms
(deconvolution and sub-pixel), through ``convert``'s own API with its accuracy gate, into
``out/benchmarks/artifacts/{deconv,subpixel}/`` (ignored by git). Calibration on T91 and the gate on Set14 when
``../shared`` is there, else scikit-image's sample photographs. Needs the ``[train]`` extra.

Exit status: 0 when every artifact passed its gate, 1 when some failed it (they are still written, marked
failed, and the benchmarks label them ``[gate failed]``), 2 on bad input.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .common import ARTIFACTS_DIR, SHARED, say

DEFAULT_FORMATS = "tflite-fp32,tflite-fp16,tflite-int8,onnx-fp32,onnx-int8"
FORMS = ("deconv", "subpixel")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.artifacts", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="trained .keras model")
    p.add_argument("--formats", default=DEFAULT_FORMATS)
    p.add_argument("--forms", default=",".join(FORMS), help="upsampler forms (deconv, subpixel)")
    p.add_argument("--calib", default=None, help="calibration folder (default: ../shared T91, else builtin)")
    p.add_argument("--eval", default=None, help="accuracy-gate folder (default: ../shared Set14, else builtin)")
    p.add_argument("--out", default=str(ARTIFACTS_DIR))
    args = p.parse_args(argv)

    from deconv_edge_convert.api import ExportConfig, convert
    from deconv_edge_core.errors import UserError

    t91 = SHARED / "data" / "sr" / "train" / "t91"
    set14 = SHARED / "data" / "sr" / "eval" / "set14"
    calib = args.calib or (str(t91) if t91.is_dir() else "builtin")
    gate = args.eval or (str(set14) if set14.is_dir() else "builtin")
    status = 0
    for form in [f.strip() for f in args.forms.split(",") if f.strip()]:
        final = Path(args.out) / form
        fresh = final.with_name(f".{form}.new")
        say(f"artifacts: {form} form -> {final}")
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            report = convert(args.model, args.formats, [calib], [gate], fresh, ExportConfig(upsampler=form),
                             progress=say)
        except UserError as exc:
            shutil.rmtree(fresh, ignore_errors=True)
            say(f"error: {exc}")
            return 2
        # Replace the whole folder: artifacts of an earlier model (other file names) must not linger and be
        # benchmarked beside the new ones.
        old = final.with_name(f".{form}.old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        fresh.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        status |= 0 if report.passed else 1
    if status:
        say("error: some artifacts failed their accuracy gate (written and marked failed; the benchmarks label "
            "them [gate failed])")
    return status


if __name__ == "__main__":
    sys.exit(main())
