"""Jetson CSI cameras (IMX219, IMX477...) through nvarguscamerasrc: ``csi://0?size=1280x720&fps=30&flip=0``."""

from __future__ import annotations

import cv2

from deconv_edge_core.errors import UserError

from . import register_source
from ._opencv import OpenCVSource, opencv_video_backends


def gstreamer_pipeline(sensor_id: int, width: int, height: int, fps: int, flip: int) -> str:
    """The Argus capture pipeline, converted to BGR on the way out.

    ``appsink drop=1 max-buffers=1`` keeps only the newest frame: by default appsink queues without limit
    and a slow consumer sees ever older frames (and memory grows).
    """
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1, format=NV12 ! "
            f"nvvidconv flip-method={flip} ! video/x-raw, width={width}, height={height}, format=BGRx ! "
            "videoconvert ! video/x-raw, format=BGR ! appsink drop=1 max-buffers=1")


@register_source("csi")
class CsiSource(OpenCVSource):
    """A CSI camera on a Jetson (needs OpenCV built with GStreamer, as JetPack's ``python3-opencv`` is)."""

    def _pipeline(self) -> str:
        w, h = self.spec.size_param("size", (1280, 720))
        sensor = self.spec.target.strip("/") or "0"
        if not sensor.isdigit():
            raise UserError(f"source '{self.spec.uri}': the sensor id must be a number, e.g. csi://0")
        return gstreamer_pipeline(int(sensor), w, h, self.spec.param("fps", 30, int), self.spec.param("flip", 0, int))

    def _capture(self):
        if not opencv_video_backends().get("GStreamer"):
            # The opencv-python wheels on PyPI are built without GStreamer.
            raise UserError("csi:// needs OpenCV built with GStreamer, and this one is not (pip wheels never are): "
                            "on JetPack use the system python3-opencv (make the venv with --system-site-packages)")
        return cv2.VideoCapture(self._pipeline(), cv2.CAP_GSTREAMER)

    def _open_error(self) -> str:
        # A previous program that crashed holding the camera leaves nvargus-daemon wedged (known Argus issue).
        return (f"cannot open CSI camera '{self.spec.uri}' (is it connected? if a program crashed while using it: "
                "sudo systemctl restart nvargus-daemon)")
