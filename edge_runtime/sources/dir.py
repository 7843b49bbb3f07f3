"""The pictures of a folder, in name order: ``dir://FOLDER?fps=10&loop=1``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..errors import UserError
from . import Source, register_source

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@register_source("dir")
class DirSource(Source):
    """Every picture of a folder once (``loop=1``: again and again); unreadable files are skipped."""

    live = False

    def __init__(self, spec):
        super().__init__(spec)
        self.files: list = []
        self.pos = 0

    def open(self) -> None:
        folder = Path(self.spec.target)
        if not folder.is_dir():
            raise UserError(f"picture folder '{folder}' does not exist")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES)
        if not self.files:
            raise UserError(f"picture folder '{folder}' holds no picture ({', '.join(PICTURE_SUFFIXES)})")
        self.fps = self.spec.param("fps", 10.0, float)
        self.pos = 0

    def read(self) -> Optional[np.ndarray]:
        loop = self.spec.param("loop", "0") not in ("0", "", "false")
        tried = 0
        while tried < len(self.files):
            if self.pos >= len(self.files):
                if not loop:
                    return None
                self.pos = 0
            path = self.files[self.pos]
            self.pos += 1
            tried += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
        return None
