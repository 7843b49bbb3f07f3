"""``window``: an OpenCV window on the local display (``q`` or Esc closes it and stops the loop)."""

from __future__ import annotations

import os
import sys

import cv2

from deconv_edge_core.errors import UserError

from . import Sink, register_sink

WINDOW_TITLE = "deconv-edge"


def display_available() -> bool:
    """A display to open windows on (always assumed on macOS and Windows)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@register_sink("window")
class WindowSink(Sink):
    def open(self) -> None:
        from ..sources._opencv import opencv_video_backends

        if not display_available():
            raise UserError("no display here (DISPLAY is not set): preview in a browser with "
                            "--sink http://127.0.0.1:8080 (over SSH: ssh -L 8080:127.0.0.1:8080 DEVICE)")
        if not opencv_video_backends().get("GUI"):
            raise UserError("this OpenCV has no GUI support (opencv-python-headless): pip install "
                            "opencv-python, or preview in a browser with --sink http://127.0.0.1:8080")
        try:
            cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise UserError(f"cannot open a window ({str(exc).strip().splitlines()[-1]})") from None

    def write(self, frame) -> None:
        cv2.imshow(WINDOW_TITLE, frame)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1:
            self.closed_by_user = True

    def close(self) -> None:
        try:
            cv2.destroyWindow(WINDOW_TITLE)
            cv2.waitKey(1)
        except cv2.error:
            pass
