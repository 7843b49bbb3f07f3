"""``onnx-fp32``: float32 ONNX via tf2onnx (opset >= 17) for ONNX Runtime (CPU, CUDA, TensorRT, OpenVINO)."""

from .base import GATE_MAX_ABS, OnnxExporter, register_exporter


@register_exporter
class OnnxFp32(OnnxExporter):
    key = "onnx-fp32"
    suffix = "_fp32.onnx"
    gate_metric = GATE_MAX_ABS
    gate_threshold = 1e-4
    description = "float32 ONNX"
