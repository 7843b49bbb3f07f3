"""The pictures of a folder, in name order: ``dir://FOLDER?fps=10&loop=1``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import IMAGE_SUFFIXES as PICTURE_SUFFIXES

from ..pictures import read_picture
from . import Source, register_source


@register_source("dir")
class DirSource(Source):
    """Every picture of a folder once (``loop=1``: again and again).

    Unreadable, cut-short or oversized pictures are skipped with a warning (once per file) and counted in
    :attr:`skipped`; the camera loop reports the count, and fails when nothing was readable.
    """

    live = False
    #: Warnings printed at most; the count goes on.
    MAX_WARNINGS = 5

    def __init__(self, spec):
        super().__init__(spec)
        self.files: list = []
        self.pos = 0
        self.skipped = 0
        self._bad: set = set()

    def open(self) -> None:
        folder = Path(self.spec.target)
        if not folder.is_dir():
            raise UserError(f"picture folder '{folder}' does not exist")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES)
        if not self.files:
            raise UserError(f"picture folder '{folder}' holds no picture ({', '.join(PICTURE_SUFFIXES)})")
        self.fps = self.spec.rate_param("fps", 10.0)
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
            if path in self._bad:
                continue
            try:
                return read_picture(path)
            except UserError as exc:
                self._bad.add(path)
                self.skipped += 1
                if self.skipped <= self.MAX_WARNINGS:
                    print(f"warning: skipped: {exc}", file=sys.stderr, flush=True)
        return None
