"""``onnx-int8``: ONNX Runtime static quantization (QDQ, per-channel int8 weights), float32 graph I/O."""

from .base import ExportResult, OnnxExporter, Option, register_exporter


@register_exporter
class OnnxInt8(OnnxExporter):
    key = "onnx-int8"
    suffix = "_int8.onnx"
    needs_calibration = True
    int8_weights = True
    full_integer = True
    gate_threshold = 0.3
    options = OnnxExporter.options + (
        Option("per_channel", "true", ("true", "false"), "per-channel weight scales"),)
    description = "int8 QDQ ONNX (float32 I/O)"

    def transform(self, proto, job):
        from .. import onnx_tools

        q = onnx_tools.quantize_int8(proto, job.calib, job.work_dir, per_channel=job.option("per_channel") == "true")
        left = onnx_tools.float_nodes(q)
        note = (f"{len(left)} node(s) left in float: {', '.join(left)}" if left else "no compute node left in float (all QDQ-quantized)")
        # The I/O specs are filled in by the caller; only notes/extra matter here.
        return q, ExportResult(None, None, (), (note,), {"float_nodes": left})
