"""``tflite-int8``: full integer quantization calibrated on real pictures; uint8 (default) or int8 I/O."""

from .base import Option, TFLiteExporter, register_exporter


@register_exporter
class TFLiteInt8(TFLiteExporter):
    key = "tflite-int8"
    suffix = "_int8.tflite"
    mode = "int8"
    needs_calibration = True
    int8_weights = True
    full_integer = True
    gate_threshold = 0.3
    options = (Option("io_dtype", "uint8", ("uint8", "int8"), "input/output tensor type"),
               Option("refit", "on", ("on", "off"), "least-squares refit of the output convs' int8 weights "
                      "to the float model (int8_refit)"))
    description = "full-integer TFLite (uint8 or int8 I/O)"
