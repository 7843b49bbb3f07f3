"""``tflite-fp16``: float16 weights (half the size); XNNPACK/GPU may also compute in fp16."""

from .base import TFLiteExporter, register_exporter


@register_exporter
class TFLiteFp16(TFLiteExporter):
    key = "tflite-fp16"
    suffix = "_fp16.tflite"
    mode = "fp16"
    gate_threshold = 0.05
    description = "float16-weight TFLite"
