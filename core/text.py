"""Text for people: an exception on one line, and tables for terminals and Markdown."""

from __future__ import annotations

from typing import Optional, Sequence

from .errors import UserError


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: a :class:`UserError`'s own message, else ``Type: first line`` (300 characters)."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def single_line(text: str) -> str:
    """A message that may quote a library's multi-line error, with its lines joined by spaces."""
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def _right(i: int, cell: str, numbers_right_from: Optional[int]) -> bool:
    return numbers_right_from is not None and i >= numbers_right_from and any(ch.isdigit() for ch in cell)


def text_table(rows: Sequence[Sequence[object]], numbers_right_from: Optional[int] = None) -> str:
    """Aligned text table; ``rows[0]`` is the header, with a dashed rule under it.

    From column ``numbers_right_from`` on, cells that hold a digit are right-aligned (``None``: all left).
    """
    widths = [max(len(str(row[i])) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).rjust(w) if _right(i, str(c), numbers_right_from) else str(c).ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[object]], numbers_right_from: Optional[int] = None) -> str:
    """A Markdown table; ``rows[0]`` is the header. Columns from ``numbers_right_from`` on are right-aligned."""

    def esc(c) -> str:
        return str(c).replace("|", "\\|")

    rule = "|".join("---:" if numbers_right_from is not None and i >= numbers_right_from else "---"
                    for i in range(len(rows[0])))
    out = ["| " + " | ".join(esc(c) for c in rows[0]) + " |", "|" + rule + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(out)
