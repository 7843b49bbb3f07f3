"""``onnx-fp16``: float16 weights and activations, float32 graph I/O (a Cast at each end)."""

from .base import OnnxExporter, register_exporter


@register_exporter
class OnnxFp16(OnnxExporter):
    key = "onnx-fp16"
    suffix = "_fp16.onnx"
    gate_threshold = 0.05
    description = "float16 ONNX (float32 I/O)"

    def transform(self, proto, job):
        from .. import onnx_tools

        return onnx_tools.to_fp16(proto), None
