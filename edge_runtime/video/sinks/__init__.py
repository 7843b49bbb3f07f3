"""Frame sinks picked by one URI, one file each, filled into ``SINKS``.

=========================  ===================================================================
URI                        sink
=========================  ===================================================================
``out.mp4``, ``file://…``  a video file (``.mp4``/``.mov``/``.m4v``/``.mkv``: MPEG-4 part 2, ``.avi``: MJPEG)
``http://127.0.0.1:8080``  an MJPEG preview server: a page, the stream and live stats (``0.0.0.0`` = all)
``window``                 an OpenCV window (needs a display and an OpenCV with GUI support)
``null``                   nothing (measure the loop alone)
=========================  ===================================================================
"""

from __future__ import annotations

import abc
import importlib
import re
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.registry import Registry

SINKS: Registry = Registry("sink")

_SINK_MODULES = ("video", "http", "window", "null")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")


def register_sink(key: str):
    """Class decorator: register a :class:`Sink` subclass under URI scheme ``key``."""
    return SINKS.register_class(key, "scheme")


@dataclass(frozen=True)
class SinkSpec:
    """A parsed sink URI."""

    uri: str
    scheme: str
    target: str


class Sink(abc.ABC):
    """Where output frames go.

    Args:
        spec: the parsed URI.
        fps: frame rate to record at (video files).

    Attributes:
        closed_by_user: the user closed it (window): the loop stops.
        stats_provider: called by sinks that show live numbers (the preview server).
    """

    scheme = "?"

    def __init__(self, spec: SinkSpec, fps: float = 30.0):
        self.spec = spec
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.closed_by_user = False
        self.stats_provider: Optional[Callable[[], dict]] = None

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire what the sink needs (a port, a window). Raises :class:`UserError` when it cannot."""

    @abc.abstractmethod
    def write(self, frame: np.ndarray) -> None:
        """Take one uint8 BGR frame."""

    def write_timed(self, frame: np.ndarray, captured_s: Optional[float]) -> None:
        """Take a frame captured at ``captured_s`` (``time.perf_counter``; ``None``: not a live source).

        Sinks that keep time (a recording paced to real time) override this; the others just :meth:`write`.
        """
        self.write(frame)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Finish (a video file is complete and playable afterwards); idempotent."""

    def facts(self) -> dict:
        """What the sink did, for the run's summary (a recording: frames written, frames its pacing dropped)."""
        return {}

    def describe(self) -> str:
        return self.spec.uri


def parse_sink_uri(uri: str) -> SinkSpec:
    """``null``, ``window``, ``http://HOST:PORT``, ``file://PATH`` or a video path.

    Raises:
        UserError: an unknown scheme (the message lists the valid ones).
    """
    _load()
    text = str(uri).strip()
    if not text:
        raise UserError("empty --sink; give a video file, http://127.0.0.1:8080, window or null")
    if text in ("null", "window"):
        return SinkSpec(text, text, "")
    m = _SCHEME.match(text)
    if not m:
        return SinkSpec(text, "file", text)
    scheme = m.group(1).lower()
    if scheme not in SINKS:
        raise UserError(f"unknown sink scheme '{m.group(1)}://' in '{text}'; valid: "
                        f"{', '.join(s + '://' for s in SINKS.names())}, or a video file path")
    return SinkSpec(text, scheme, m.group(2))


def open_sink(uri: str, fps: float = 30.0, **options) -> Sink:
    """Parse ``uri`` and open its sink; ``options`` go to the sink's constructor (``segment_s`` for files)."""
    spec = parse_sink_uri(uri)
    sink = SINKS.get(spec.scheme)(spec, fps, **options)
    sink.open()
    return sink


def _load() -> None:
    for name in _SINK_MODULES:
        importlib.import_module(f"{__name__}.{name}")


__all__ = ["SINKS", "Sink", "SinkSpec", "register_sink", "parse_sink_uri", "open_sink"]
