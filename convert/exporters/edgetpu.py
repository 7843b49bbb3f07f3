"""``edgetpu``: full-integer TFLite for the Coral Edge TPU (static shapes, batch 1, Edge TPU ops only).

The upsampler stays a TRANSPOSE_CONV: the Edge TPU has no DEPTH_TO_SPACE, so the sub-pixel form would split
the graph and run its tail on the host CPU. When ``edgetpu_compiler`` is on PATH the model is compiled and its
log becomes a per-op "mapped / not mapped" table; otherwise only the static checks run and the report says the
compile step happens on a host that has the compiler (Linux x86-64; it is not available for Arm).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from deconv_edge_core.errors import UserError

from .base import ExportJob, ExportResult, Option, TFLiteExporter, check_tflite_static, register_exporter

#: Ops the Edge TPU compiler can map, from https://coral.ai/docs/edgetpu/models-intro/#supported-operations
#: (as TFLite builtin names). Anything else runs on the CPU, and everything after it too.
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS", "FULLY_CONNECTED",
    "L2_NORMALIZATION", "LOGISTIC", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
    "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX",
    "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH",
    "TRANSPOSE", "TRANSPOSE_CONV",
})
#: Newest op versions Edge TPU compiler 16 (the last release) is known to parse. The compiler refuses a newer
#: one outright: "Didn't find op for builtin opcode 'TRANSPOSE_CONV' version '4'" (google-coral/edgetpu#845;
#: the same kind of converter-version error is reported for other ops in #631 and #879). Ops not listed here
#: have no known limit; their versions are recorded in the manifest so a failing compile can be traced.
EDGETPU_MAX_OP_VERSIONS = {"TRANSPOSE_CONV": 3}
EDGETPU_OP_VERSION_ISSUES = {"TRANSPOSE_CONV": "google-coral/edgetpu#845"}
COMPILER = "edgetpu_compiler"
#: What the converter checks before (or without) the compiler.
STATIC_CHECKS = ("batch 1 and static shapes", "full integer: no float tensor",
                 "op names in the Edge TPU's supported-op list (EDGETPU_OPS)")
COMPILE_TIMEOUT_S = 600
_LOG_ROW = re.compile(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(\S.*?)\s*$")


def op_version_problems(versions: dict) -> list[str]:
    """Ops whose version Edge TPU compiler 16 refuses, from ``{op: [versions]}`` (empty list = none)."""
    problems = []
    for op, found in sorted(versions.items()):
        limit = EDGETPU_MAX_OP_VERSIONS.get(op)
        if limit is not None and max(found) > limit:
            problems.append(f"{op} version {max(found)} (compiler 16 parses up to version {limit}: "
                            f"{EDGETPU_OP_VERSION_ISSUES.get(op, 'Coral docs')}); use an older TensorFlow converter "
                            f"or another upsampler")
    return problems


def parse_compiler_log(text: str) -> list[dict]:
    """``edgetpu_compiler -s`` output → ``[{"op", "count", "status", "mapped"}]`` (the per-op table)."""
    rows, in_table = [], False
    for line in text.splitlines():
        if line.strip().startswith("Operator") and "Status" in line:
            in_table = True
            continue
        m = _LOG_ROW.match(line.strip()) if in_table else None
        if m:
            status = m.group(3)
            rows.append({"op": m.group(1), "count": int(m.group(2)), "status": status,
                         "mapped": status.startswith("Mapped to Edge TPU")})
    return rows


def compile_for_edgetpu(model_path: Path, work_dir: Path) -> tuple[Path, list[dict], str]:
    """Run ``edgetpu_compiler`` on ``model_path``; return the compiled file, the op table and the version line.

    Raises:
        UserError: the compiler failed.
    """
    out_dir = work_dir / "edgetpu"
    out_dir.mkdir(exist_ok=True)
    try:
        proc = subprocess.run([COMPILER, "-s", "-o", str(out_dir), str(model_path)], capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"{COMPILER} did not run: {exc}") from None
    log = proc.stdout + "\n" + proc.stderr
    compiled = out_dir / f"{model_path.stem}_edgetpu.tflite"
    if proc.returncode != 0 or not compiled.is_file():
        tail = " | ".join(line for line in log.strip().splitlines()[-3:])
        raise UserError(f"{COMPILER} failed (exit {proc.returncode}): {tail[:300]}")
    version = next((ln.strip() for ln in log.splitlines() if "Compiler version" in ln), COMPILER)
    return compiled, parse_compiler_log(log), version


@register_exporter
class EdgeTPU(TFLiteExporter):
    key = "edgetpu"
    suffix = "_edgetpu.tflite"
    mode = "int8"
    needs_calibration = True
    int8_weights = True
    full_integer = True
    target = "edgetpu"
    static_shape = True
    gate_threshold = 0.3
    options = (Option("io_dtype", "uint8", ("uint8", "int8"), "input/output tensor type"),
               Option("refit", "on", ("on", "off"), "least-squares refit of the output convs' int8 weights "
                      "to the float model (int8_refit)"))
    description = "full-integer TFLite for the Coral Edge TPU"

    def finish(self, job: ExportJob, data: bytes, result: ExportResult) -> ExportResult:
        from .. import tflite_tools

        versions = tflite_tools.op_versions(data)
        problems = check_tflite_static(data, "the Edge TPU", EDGETPU_OPS) + op_version_problems(versions)
        if problems:
            raise UserError(f"not Edge TPU compatible: {'; '.join(problems)}")
        notes = [*result.notes, "static checks passed: batch 1, static shapes, full integer, only Edge TPU ops, op versions "
                 "compiler 16 parses (" + ", ".join(f"{k} v{max(v)}" for k, v in versions.items()) + ")"]
        # Say what was checked and what was not: only edgetpu_compiler tells whether each op maps to the Edge
        # TPU, and only an Edge TPU runs the compiled file.
        extra: dict = {"edgetpu": {
            "compiled": False, "static_checks": "passed", "checked": list(STATIC_CHECKS) + [
                "op versions within what compiler 16 parses (EDGETPU_MAX_OP_VERSIONS)"],
            "op_versions": versions, "op_version_limits": dict(EDGETPU_MAX_OP_VERSIONS),
            "not_checked": "mapping to the Edge TPU (edgetpu_compiler decides it); the accuracy gate runs this "
                           "uncompiled file on the CPU interpreter"}}
        if shutil.which(COMPILER):
            compiled, table, version = compile_for_edgetpu(job.dest, job.work_dir)
            # The compiler may drop metadata entries; embed ours again so the file stays self-describing.
            data = tflite_tools.embed_metadata(compiled.read_bytes(), job.metadata)
            job.dest.write_bytes(data)
            unmapped = [r for r in table if not r["mapped"]]
            extra["edgetpu"] = {"compiled": True, "compiler": version, "ops": table, "static_checks": "passed",
                                "checked": [*STATIC_CHECKS, f"compiled by {version}: per-op mapping in 'ops'"],
                                "op_versions": versions, "op_version_limits": dict(EDGETPU_MAX_OP_VERSIONS)}
            notes.append(f"compiled with {version}: " + (
                "every op mapped to the Edge TPU" if not unmapped else
                "not mapped: " + ", ".join(f"{r['op']} x{r['count']} ({r['status']})" for r in unmapped)))
            result = ExportResult(result.input, result.output, tuple(tflite_tools.op_names(data)))
        else:
            notes.append(f"not compiled: {COMPILER} is not on PATH here; run this conversion on a Linux x86-64 "
                         f"host with the Edge TPU compiler to get the compiled file (CPU-only until then)")
        return ExportResult(result.input, result.output, result.ops, tuple(notes), extra)
