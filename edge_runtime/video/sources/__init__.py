"""Frame sources picked by one URI (jetson-utils' idea), one file each, filled into ``SOURCES``.

=============================================  ==========================================================
URI                                            source
=============================================  ==========================================================
``0``, ``/dev/video0``, ``v4l2:///dev/video0``  a V4L2 camera through OpenCV (``?width=&height=&fps=&fourcc=``)
``csi://0``                                    a Jetson CSI camera (nvarguscamerasrc GStreamer pipeline)
``picam://0``                                  a Raspberry Pi camera through picamera2 (libcamera)
``video.mp4``, ``file://video.mp4``            a video file (``?loop=1``)
``rtsp://host/stream``                         an RTSP stream (TCP; ``DECONV_EDGE_RTSP_TRANSPORT=udp``)
``dir://FOLDER``                               the pictures of a folder, in name order (``?fps=&loop=1``)
``demo://``                                    a built-in moving scene (``?size=320x240&fps=30``)
=============================================  ==========================================================
"""

from __future__ import annotations

import abc
import importlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qsl, unquote

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.registry import Registry

SOURCES: Registry = Registry("source")

_SOURCE_MODULES = ("v4l2", "csi", "picam", "file", "rtsp", "dir", "demo")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")
#: Schemes that are another name for a registered source.
_ALIASES = {"rtsps": "rtsp"}


def register_source(key: str):
    """Class decorator: register a :class:`Source` subclass under URI scheme ``key``."""
    return SOURCES.register_class(key, "scheme")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source URI: ``scheme://target?params``."""

    uri: str
    scheme: str
    target: str
    params: dict = field(default_factory=dict)

    def param(self, key: str, default=None, cast=str):
        """A query parameter converted with ``cast``; a bad value is a one-line :class:`UserError`."""
        if key not in self.params:
            return default
        try:
            value = cast(self.params[key])
        except ValueError:
            raise UserError(f"source '{self.uri}': bad value '{self.params[key]}' for '{key}'") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"source '{self.uri}': '{key}' must be a finite number, got '{self.params[key]}'")
        return value

    def rate_param(self, key: str = "fps", default: float = 30.0) -> float:
        """A frame rate: a number in (0, 1000]."""
        value = self.param(key, default, float)
        if not 0 < value <= 1000:
            raise UserError(f"source '{self.uri}': '{key}' must be more than 0 and at most 1000, got '{value:g}'")
        return value

    def size_param(self, key: str = "size", default: Optional[tuple] = None) -> Optional[tuple]:
        """``WxH`` → ``(w, h)``."""
        text = self.params.get(key)
        if text is None:
            return default
        m = re.fullmatch(r"(\d{1,9})[xX](\d{1,9})", text)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise UserError(f"source '{self.uri}': '{key}' must look like 640x480, got '{text}'")
        return int(m.group(1)), int(m.group(2))


class Source(abc.ABC):
    """One opened frame source. Not thread-safe: the grabber thread owns it.

    Attributes:
        live: a camera or stream (the grabber keeps only the newest frame and watches for stalls) rather
            than a file read at the consumer's pace (every frame delivered, the end is the end).
        fps: nominal frame rate, ``None`` when unknown.
    """

    scheme = "?"
    live = True

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        self.fps: Optional[float] = None
        #: Set by the grabber when it gives up on this instance (a read blocked past the watchdog).
        self.abandoned = False

    @abc.abstractmethod
    def open(self) -> None:
        """Start delivering. Raises :class:`UserError` with a one-line reason and what to try."""

    @abc.abstractmethod
    def read(self) -> Optional[np.ndarray]:
        """The next frame (uint8 BGR), or ``None`` on a failed read / the end of a file."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device or file (idempotent)."""

    def reopen(self) -> Source:
        """A fresh, unopened instance for a reconnect."""
        return type(self)(self.spec)

    def describe(self) -> str:
        return self.spec.uri


def parse_source_uri(uri: str) -> SourceSpec:
    """Split a source URI into scheme, target and query parameters (see the module docstring).

    Raises:
        UserError: an unknown scheme (the message lists the valid ones).
    """
    _load()
    text = str(uri).strip()
    if not text:
        raise UserError("empty --source; give a camera index, a video file or a URI such as demo://")
    if text.isdigit():
        return SourceSpec(text, "v4l2", text)
    if text.startswith("/dev/video"):
        return SourceSpec(text, "v4l2", text)
    m = _SCHEME.match(text)
    if not m:
        # A plain path: a folder of pictures or a video file.
        return SourceSpec(text, "dir" if Path(text).is_dir() else "file", text)
    scheme = _ALIASES.get(m.group(1).lower(), m.group(1).lower())
    if scheme not in SOURCES:
        raise UserError(f"unknown source scheme '{m.group(1)}://' in '{text}'; valid: "
                        f"{', '.join(s + '://' for s in SOURCES.names())}, a camera index, or a video file path")
    rest, params = m.group(2), {}
    if scheme != "rtsp" and "?" in rest:  # an RTSP URL keeps its own query string
        rest, query = rest.split("?", 1)
        params = dict(parse_qsl(query, keep_blank_values=True))
    return SourceSpec(text, scheme, unquote(rest), params)


def open_source(uri: str) -> Source:
    """Parse ``uri`` and open its source.

    Raises:
        UserError: unknown scheme, or the source cannot be opened.
    """
    spec = parse_source_uri(uri)
    src = SOURCES.get(spec.scheme)(spec)
    src.open()
    return src


def _load() -> None:
    for name in _SOURCE_MODULES:
        importlib.import_module(f"{__name__}.{name}")


__all__ = ["SOURCES", "Source", "SourceSpec", "register_source", "parse_source_uri", "open_source"]
