"""Raspberry Pi camera modules through picamera2: ``picam://0?size=640x480``.

OpenCV cannot open libcamera cameras: on Raspberry Pi OS Bookworm and later the ``/dev/video*`` nodes of a
camera module are the ISP's, and ``cv2.VideoCapture(0)`` fails or returns garbage.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from deconv_edge_core.errors import UserError

from . import Source, register_source

PICAMERA2_HINT = ("picam:// needs picamera2: on Raspberry Pi OS 'sudo apt install python3-picamera2' and make the "
                  "venv with --system-site-packages (pip cannot build libcamera)")


@register_source("picam")
class PiCameraSource(Source):
    """A Raspberry Pi camera module (libcamera)."""

    def __init__(self, spec):
        super().__init__(spec)
        self.cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2  # lazy: only Raspberry Pi OS has it
        except ImportError:
            raise UserError(PICAMERA2_HINT) from None
        index = self.spec.target.strip("/") or "0"
        if not index.isdigit():
            raise UserError(f"source '{self.spec.uri}': the camera number must be a number, e.g. picam://0")
        w, h = self.spec.size_param("size", (640, 480))
        try:
            cam = Picamera2(int(index))
            # libcamera names formats by their little-endian word: "RGB888" is B, G, R in memory,
            # which is what OpenCV wants.
            cam.configure(cam.create_video_configuration(main={"size": (w, h), "format": "RGB888"},
                                                         buffer_count=2))
            fps = self.spec.param("fps", None, float)
            if fps:
                cam.set_controls({"FrameRate": fps})
            cam.start()
        except (IndexError, RuntimeError, OSError) as exc:
            raise UserError(f"cannot open camera '{self.spec.uri}' ({exc}); 'rpicam-hello --list-cameras' "
                            "lists the connected ones") from None
        self.cam = cam
        self.fps = self.spec.param("fps", None, float)

    def read(self) -> Optional[np.ndarray]:
        if self.cam is None:
            return None
        try:
            return np.ascontiguousarray(self.cam.capture_array("main")[..., :3])
        except RuntimeError:
            return None

    def close(self) -> None:
        if self.cam is not None:
            try:
                self.cam.stop()
                self.cam.close()
            finally:
                self.cam = None
