"""``deconv-edge convert``: Keras models → TFLite / ONNX / Edge TPU artifacts, each gated and with a manifest.

Public API in :mod:`deconv_edge_convert.api` (``ExportConfig``, ``export_one``, ``convert``); formats in
:data:`deconv_edge_convert.exporters.EXPORTERS`. Importing this package is cheap: TensorFlow loads only when a conversion runs.
"""
