"""Shared base of the sources that read through ``cv2.VideoCapture``."""

from __future__ import annotations

import re
from functools import cache
from typing import Optional

import cv2
import numpy as np

from ..errors import UserError
from . import Source


@cache
def opencv_video_backends() -> dict:
    """Which video I/O backends this OpenCV build has: ``{"FFMPEG": True, "GStreamer": False, ...}``."""
    info = cv2.getBuildInformation()
    out = {}
    for name in ("FFMPEG", "GStreamer", "v4l/v4l2"):
        m = re.search(rf"^\s*{re.escape(name)}:\s*(\S+)", info, re.M)
        out[name] = bool(m and m.group(1).upper().startswith("YES"))
    gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.M)
    out["GUI"] = bool(gui and gui.group(1).upper() != "NONE")
    return out


def quiet_opencv() -> None:
    """Keep OpenCV's own WARN lines (a failed open prints several) out of our one-line messages."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class OpenCVSource(Source):
    """A ``cv2.VideoCapture``; subclasses say how to open it."""

    def __init__(self, spec):
        super().__init__(spec)
        self.cap: Optional[cv2.VideoCapture] = None

    def _capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def _open_error(self) -> str:
        return f"cannot open source '{self.spec.uri}'"

    def open(self) -> None:
        quiet_opencv()
        cap = self._capture()
        if cap is None or not cap.isOpened():
            raise UserError(self._open_error())
        self.cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        if fps and 0 < fps < 1000:
            self.fps = float(fps)

    def read(self) -> Optional[np.ndarray]:
        if self.cap is None:
            return None
        ok, frame = self.cap.read()
        return frame if ok and frame is not None and frame.size else None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
