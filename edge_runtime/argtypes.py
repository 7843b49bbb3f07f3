"""argparse ``type=`` converters shared by every ``deconv-edge`` subcommand (one message style)."""

from __future__ import annotations

import argparse
import re


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
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def height_width(text: str) -> tuple:
    """``240x320`` → ``(240, 320)``."""
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 240x320, got '{text}'")
    return int(m.group(1)), int(m.group(2))
