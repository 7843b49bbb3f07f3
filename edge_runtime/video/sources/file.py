"""Video files through OpenCV's FFmpeg: ``video.mp4`` or ``file://video.mp4?loop=1``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from deconv_edge_core.errors import UserError

from . import register_source
from ._opencv import OpenCVSource


@register_source("file")
class FileSource(OpenCVSource):
    """Every frame of a video file, at the consumer's pace; ``loop=1`` starts again at the end."""

    live = False

    def _capture(self):
        path = Path(self.spec.target)
        if not path.is_file():
            raise UserError(f"video file '{path}' does not exist")
        return cv2.VideoCapture(str(path))

    def _open_error(self) -> str:
        return f"cannot decode '{self.spec.target}' as a video (OpenCV's FFmpeg could not open it)"

    def read(self) -> Optional[np.ndarray]:
        frame = super().read()
        if frame is None and self.cap is not None and self.spec.param("loop", "0") not in ("0", "", "false"):
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            frame = super().read()
        return frame
