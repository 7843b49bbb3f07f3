"""Inference, on the device: an artifact and its manifest in, enhanced frames out.

:class:`~.enhance.Enhancer` (colour split, tiling, the backend call), the backends (LiteRT, Edge TPU, ONNX
Runtime) that check the artifact against its manifest, :class:`~.config.RuntimeConfig`, and the default pick
among the shipped models (``edge_runtime/models/``).
"""
