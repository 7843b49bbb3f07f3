"""``tflite-fp32``: float32 TFLite (XNNPACK on CPUs, the GPU delegate)."""

from .base import GATE_MAX_ABS, TFLiteExporter, register_exporter


@register_exporter
class TFLiteFp32(TFLiteExporter):
    key = "tflite-fp32"
    suffix = "_fp32.tflite"
    mode = "fp32"
    gate_metric = GATE_MAX_ABS
    gate_threshold = 1e-4
    description = "float32 TFLite"
