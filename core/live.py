"""One live status line on a terminal (rewritten in place with ``\\r``); nothing at all in pipes and logs."""

from __future__ import annotations

import sys
import time
from typing import Optional


class LiveLine:
    """A status line that long work keeps up to date.

    Args:
        stream: where it goes (default stderr, so stdout stays the command's result).
        enabled: ``None`` = only when ``stream`` is a terminal.
        min_interval_s: updates closer together than this are skipped (``force`` overrides).
    """

    def __init__(self, stream=None, enabled: Optional[bool] = None, min_interval_s: float = 0.25):
        self.stream = stream if stream is not None else sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = tty if enabled is None else enabled
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._width = 0

    def due(self) -> bool:
        """Whether an update now would show (enabled, and ``min_interval_s`` since the last one)."""
        return self.enabled and time.monotonic() - self._last >= self.min_interval_s

    def update(self, text: str, force: bool = False) -> None:
        """Show ``text`` in place of the previous status."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        text = text[:160]
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Remove the status (before a normal output line, and at the end)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def say(self, line: str, stream=None) -> None:
        """Print a permanent ``line`` (to ``stream``, default stdout) without mixing it into the status."""
        self.clear()
        print(line, file=stream or sys.stdout, flush=True)
