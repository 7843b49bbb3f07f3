"""``EXPORTERS``: artifact formats, one file each; importing this package fills the registry.

Importing is cheap (no TensorFlow/ONNX until an exporter runs), so the CLI can list formats anywhere.
"""
# isort: skip_file
# (the import order below is the registration order: ``--formats all`` and the report follow it)

from .base import (EXPORTERS, GATE_MAX_ABS, GATE_PSNR_DROP, Exporter, ExportJob, ExportResult, Option,
                   register_exporter)
from . import tflite_fp32, tflite_fp16, tflite_dynamic, tflite_int8, edgetpu  # noqa: F401
from . import onnx_fp32, onnx_fp16, onnx_int8  # noqa: F401

__all__ = ["EXPORTERS", "Exporter", "ExportJob", "ExportResult", "Option", "register_exporter", "GATE_MAX_ABS",
           "GATE_PSNR_DROP"]
