"""USB / V4L2 cameras through OpenCV: ``0``, ``/dev/video0``, ``v4l2:///dev/video0?width=640&height=480``."""

from __future__ import annotations

import glob
import os
import sys

import cv2

from . import register_source
from ._opencv import OpenCVSource


@register_source("v4l2")
class V4L2Source(OpenCVSource):
    """A V4L2 camera. Options: ``width``, ``height``, ``fps``, ``fourcc`` (e.g. ``MJPG``)."""

    def _device(self):
        target = self.spec.target.strip("/") if self.spec.target.strip("/").isdigit() else self.spec.target
        return int(target) if str(target).isdigit() else target

    def _capture(self):
        device = self._device()
        path = f"/dev/video{device}" if isinstance(device, int) else device
        if sys.platform.startswith("linux") and not os.path.exists(path):
            return None
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY)
        if not cap.isOpened():
            return cap
        fourcc = self.spec.param("fourcc")
        if fourcc:
            # USB 2 cameras deliver 640x480 YUYV at ~30 fps at best; MJPG unlocks larger sizes and rates.
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc[:4].ljust(4)))
        for key, prop in (("width", cv2.CAP_PROP_FRAME_WIDTH), ("height", cv2.CAP_PROP_FRAME_HEIGHT),
                          ("fps", cv2.CAP_PROP_FPS)):
            value = self.spec.param(key, cast=float)
            if value:
                cap.set(prop, value)
        # The driver queues 4 buffers by default: frames would be ~4 periods old. The grabber thread
        # drains the queue anyway; a single buffer keeps latency low where the driver allows it.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _open_error(self) -> str:
        device = self._device()
        path = f"/dev/video{device}" if isinstance(device, int) else device
        cams = ", ".join(sorted(glob.glob("/dev/video*"))) or "none"
        if not os.path.exists(path):
            return (f"camera '{path}' not found (cameras here: {cams}); on a Raspberry Pi camera module use "
                    "picam://0, on a Jetson CSI camera csi://0; see 'deconv-edge doctor'")
        return (f"cannot open camera '{path}' (busy in another program, or no permission: add yourself to the "
                "'video' group); see 'deconv-edge doctor'")
