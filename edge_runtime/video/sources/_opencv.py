"""Shared base of the sources that read through ``cv2.VideoCapture``."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

import cv2
import numpy as np

from deconv_edge_core.errors import UserError

from . import Source

#: ``cv::utils::logging::LOG_LEVEL_ERROR`` (OpenCV 4.x's Python API takes the plain number).
OPENCV_LOG_LEVEL_ERROR = 2


@lru_cache(maxsize=None)  # not cache(), which is 3.9+: the device side runs on 3.8 (JetPack 5)
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
    """Keep OpenCV's own WARN lines (a failed open prints several) out of our one-line messages.

    Never louder than the level already set: the CLI starts OpenCV at FATAL (``OPENCV_LOG_LEVEL``), which also
    keeps its ``[ERROR] ... Could not find decoder`` lines before our own message.

    OpenCV 5 has ``cv2.utils.logging``; 4.x (4.11 is the last with numpy 1.x wheels, the legacy stack; Debian
    and JetPack ship 4.x too) has only ``cv2.setLogLevel``/``cv2.getLogLevel`` with the same numbers. Builds with
    neither stay loud.
    """
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is not None:
        log.setLogLevel(min(log.getLogLevel(), log.LOG_LEVEL_ERROR))
    elif hasattr(cv2, "setLogLevel"):
        current = cv2.getLogLevel() if hasattr(cv2, "getLogLevel") else OPENCV_LOG_LEVEL_ERROR
        cv2.setLogLevel(min(current, OPENCV_LOG_LEVEL_ERROR))


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
