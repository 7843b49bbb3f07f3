"""Silence C-level stderr chatter from native runtimes for the duration of a block.

Python's ``sys.stderr`` redirection cannot catch what C++ libraries write to file descriptor 2, e.g.
LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` on every interpreter load, or
TensorFlow's pre-``absl::InitializeLog`` lines (tensorflow/tensorflow#62075). They would bury our one-line
messages. Exceptions still propagate with their own messages.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def muted_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null inside the block (no-op where fd 2 cannot be duplicated)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
