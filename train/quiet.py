"""Import TensorFlow without its start-up chatter (see :mod:`deconv_edge_core.quiet`)."""

from __future__ import annotations

import os
import sys

from deconv_edge_core.quiet import muted_stderr


def import_tensorflow():
    """Import and return ``tensorflow`` with fd 2 muted during the import and the CUDA probe only."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with muted_stderr():
        import tensorflow as tf  # noqa: PLC0415

        tf.config.list_physical_devices()  # probes CUDA now (cuInit error on CPU-only hosts), still muted
    return tf
