"""Import TensorFlow without its start-up chatter.

TensorFlow >= 2.16 logs through absl before ``absl::InitializeLog()`` runs, and those lines ("oneDNN custom
operations are on", "Could not find cuda drivers", cuInit errors) ignore ``TF_CPP_MIN_LOG_LEVEL``
(tensorflow/tensorflow#62075). They would bury our one-line messages, so stderr is muted while importing.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow():
    """Import and return ``tensorflow`` with stderr silenced during the import only."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf  # noqa: PLC0415

        tf.config.list_physical_devices()  # probes CUDA now (cuInit error on CPU-only hosts), still muted
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
