"""argparse ``type=`` converters shared by every ``deconv-edge`` subcommand (one message style)."""

from __future__ import annotations

import argparse
import math
import os
import re
from typing import Optional

#: Interpreter threads beyond this are refused (each is an OS thread; 100000 cannot even start).
MAX_THREADS = 256
#: Longest side of a tile (low-resolution pixels): larger ones would not fit a device's memory anyway.
MAX_TILE_SIDE = 8192


def _number(text: str, kind, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None


def positive_int(text: str) -> int:
    v = _number(text, int, "an integer")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def non_negative_int(text: str) -> int:
    v = _number(text, int, "an integer")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v}")
    return v


def positive_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v):
        # nan compares false with everything: a nan --timeout would switch the watchdog off.
        raise argparse.ArgumentTypeError(f"must be a finite number, got '{text}'")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def non_negative_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got '{text}'")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v}")
    return v


def split_hw(text) -> Optional[tuple]:
    """``"240x320"`` → ``(240, 320)``, height x width; ``None`` when ``text`` is not ``HxW``.

    The one parser of ``HxW`` sizes: :func:`height_width` and the ``--input-size`` options build on it.
    """
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text or ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


def height_width(text: str) -> tuple:
    """``240x320`` → ``(240, 320)`` (each side 1..:data:`MAX_TILE_SIDE`)."""
    # At most 9 digits a side: a longer number is refused here, before int() is asked to read it.
    hw = split_hw(text) if re.fullmatch(r"\s*\d{1,9}\s*[xX]\s*\d{1,9}\s*", str(text or "")) else None
    if not hw or min(hw) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 240x320, got '{text}'")
    h, w = hw
    if max(h, w) > MAX_TILE_SIDE:
        raise argparse.ArgumentTypeError(f"{h}x{w} is too large: each side at most {MAX_TILE_SIDE}")
    return h, w


def thread_count(text: str) -> int:
    """A positive thread count, at most :data:`MAX_THREADS` (the cap ``bench --threads`` has too)."""
    v = positive_int(text)
    if v > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"at most {MAX_THREADS} threads, got {v} (this machine has "
                                         f"{os.cpu_count() or '?'} CPUs)")
    return v
