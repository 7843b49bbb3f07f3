"""RTSP streams (IP cameras) through OpenCV's FFmpeg: ``rtsp://user:pass@host:554/stream``."""

from __future__ import annotations

import os

import cv2

from . import register_source
from ._opencv import OpenCVSource

#: Open and read timeouts: FFmpeg would otherwise block for ~30 s on a dead camera.
TIMEOUT_MS = 5000


@register_source("rtsp")
class RtspSource(OpenCVSource):
    """An RTSP stream, over TCP unless ``DECONV_EDGE_RTSP_TRANSPORT=udp`` (the URL keeps its own query string)."""

    def _capture(self):
        # RTP over UDP drops packets on Wi-Fi and the decoder smears the missing slices into grey blocks;
        # TCP interleaving trades a little latency for whole frames (a known OpenCV/FFmpeg RTSP issue).
        transport = os.environ.get("DECONV_EDGE_RTSP_TRANSPORT", "tcp")
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{transport}"
        return cv2.VideoCapture(self.spec.uri, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, TIMEOUT_MS])

    def _open_error(self) -> str:
        return (f"cannot open stream '{self.spec.uri}' within {TIMEOUT_MS // 1000} s (check the address, "
                "credentials and that the camera is reachable, e.g. with ffplay)")

    def describe(self) -> str:
        # Never print credentials.
        uri = self.spec.uri
        if "@" in uri.split("/", 3)[2]:
            uri = "rtsp://***@" + uri.split("@", 1)[1]
        return uri
