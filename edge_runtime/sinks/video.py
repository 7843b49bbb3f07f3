"""Video files: ``out.mp4`` (or ``file://out.mp4``), written under a temporary name and renamed when finished."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..errors import UserError
from ..fsutil import atomic_path
from . import Sink, register_sink

#: Codec per container. The opencv-python wheels' FFmpeg has no H.264 encoder, so MP4 gets MPEG-4 part 2
#: ("mp4v": plays in VLC, ffplay, most players; browsers want H.264) and AVI gets MJPEG.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class VideoWriter:
    """A ``cv2.VideoWriter`` opened at the first frame, writing beside ``path`` and renamed on :meth:`close`.

    An interrupted or failed run leaves no half-written file under ``path``; frames of another size than the
    first are resized (a video has one size).

    Raises:
        UserError: unknown suffix, or OpenCV cannot write this container here.
    """

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC:
            raise UserError(f"cannot write video '{self.path}': use one of {', '.join(FOURCC)}")
        self.fps = fps
        self.frames = 0
        self.size: Optional[tuple] = None
        self._writer: Optional[cv2.VideoWriter] = None
        self._atomic = None  # the fsutil.atomic_path context while a temporary file exists

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self._writer is None:
            self._atomic = atomic_path(self.path)
            tmp = self._atomic.__enter__()
            fourcc = FOURCC[self.path.suffix.lower()]
            self._writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h))
            if not self._writer.isOpened():
                self.abort()
                raise UserError(f"OpenCV cannot write '{self.path}' here (no {fourcc} encoder); try .avi")
            self.size = (w, h)
        elif (w, h) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (nothing is left when no frame came)."""
        self._end(keep=self.frames > 0)

    def abort(self) -> None:
        """Drop the temporary file."""
        self._end(keep=False)

    def _end(self, keep: bool) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            if keep:
                atomic.__exit__(None, None, None)  # rename into place
            else:
                atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)  # delete


@register_sink("file")
class VideoFileSink(Sink):
    """Records the output frames at the source's frame rate."""

    def __init__(self, spec, fps=30.0):
        super().__init__(spec, fps)
        self.writer = VideoWriter(spec.target, self.fps)

    def write(self, frame) -> None:
        self.writer.write(frame)

    def close(self) -> None:
        self.writer.close()

    def describe(self) -> str:
        return str(self.writer.path)
