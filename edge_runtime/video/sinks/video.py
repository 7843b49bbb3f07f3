"""Video files: ``out.mp4`` (or ``file://out.mp4``), written under a temporary name and renamed when finished."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import atomic_path

from ..recording import (
    FramePacer,
    TempLock,
    WriteGuard,
    next_segment_index,
    remove_stale_temps,
    segment_path,
    verify_video,
)
from . import Sink, register_sink

#: Codec per container. The opencv-python wheels' FFmpeg has no H.264 encoder, so MP4 gets MPEG-4 part 2
#: ("mp4v": plays in VLC, ffplay, most players; browsers want H.264) and AVI gets MJPEG.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class VideoWriter:
    """A ``cv2.VideoWriter`` opened at the first frame, writing beside ``path`` and renamed on :meth:`close`.

    An interrupted or failed run leaves no half-written file under ``path``; frames of another size than the
    first are resized (a video has one size). Every write is checked, and the finished file is reopened and
    its frames counted before it replaces anything (:mod:`edge_runtime.video.recording`): a full disk fails loudly
    and keeps the previous file. Temporary files of killed runs writing ``path`` are removed, with a warning.

    Raises:
        UserError: unknown suffix, or OpenCV cannot write this container here.
    """

    def __init__(self, path: str | Path, fps: float, say=None):
        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC:
            raise UserError(f"cannot write video '{self.path}': use one of {', '.join(FOURCC)}")
        self.fps = fps
        self.frames = 0
        self.size: Optional[tuple] = None
        self._writer: Optional[cv2.VideoWriter] = None
        self._atomic = None  # the fsutil.atomic_path context while a temporary file exists
        self._tmp: Optional[Path] = None
        self._guard: Optional[WriteGuard] = None
        self._lock: Optional[TempLock] = None
        self._failed = False
        remove_stale_temps(self.path, say or _warn)

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self._writer is None:
            self._atomic = atomic_path(self.path)
            tmp = self._atomic.__enter__()
            self._tmp, self._lock = tmp, TempLock(tmp)
            fourcc = FOURCC[self.path.suffix.lower()]
            self._writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h))
            if not self._writer.isOpened():
                self.abort()
                raise UserError(f"OpenCV cannot write '{self.path}' here (no {fourcc} encoder); try .avi")
            self.size = (w, h)
            self._guard = WriteGuard(self.path, tmp, every=max(1, int(round(self.fps))))
        elif (w, h) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        if self._failed:
            return
        try:
            result = self._writer.write(frame)
            self.frames += 1
            self._guard.after_write(result, self.frames)
        except BaseException:
            self._failed = True  # close() must drop this file, never rename it over a good one
            raise

    def close(self) -> None:
        """Finish the file, prove it plays, and move it into place (nothing is left when no frame came).

        Raises:
            RecordingFailed: the finished file does not open or misses frames (the previous file is kept).
        """
        if self._failed or self.frames == 0:
            self._end(keep=False)
            return
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        try:
            verify_video(self._tmp, self.frames, self.path)
        except BaseException:
            self._end(keep=False)
            raise
        self._end(keep=True)

    def abort(self) -> None:
        """Drop the temporary file."""
        self._end(keep=False)

    def _end(self, keep: bool) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            if keep:
                atomic.__exit__(None, None, None)  # rename into place
            else:
                atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)  # delete


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@register_sink("file")
class VideoFileSink(Sink):
    """Records the output frames at the source's frame rate, paced to real time for live sources.

    ``segment_s`` (``--segment``): a new file every that many seconds, ``NAME_0000.EXT``, ``NAME_0001.EXT``...,
    each finished and checked when the next begins, so a killed run loses at most its last segment. Numbers
    go on after the highest already there, so a restarted recorder keeps what it recorded before.
    """

    def __init__(self, spec, fps=30.0, segment_s: Optional[float] = None):
        super().__init__(spec, fps)
        self.path = Path(spec.target)
        self.segment_frames = max(1, int(round(segment_s * self.fps))) if segment_s else None
        self.segments: list = []
        if self.segment_frames:
            remove_stale_temps(self.path, _warn, segments=True)
        self._index = next_segment_index(self.path) if self.segment_frames else 0
        self.pacer = FramePacer(self.fps)
        self.recorded_frames = 0
        self.writer = self._next_writer()

    def _next_writer(self) -> VideoWriter:
        path = segment_path(self.path, self._index) if self.segment_frames else self.path
        return VideoWriter(path, self.fps)

    def write(self, frame) -> None:
        self.write_timed(frame, None)

    def write_timed(self, frame, captured_s) -> None:
        for _ in range(self.pacer.copies(captured_s)):
            if self.segment_frames and self.writer.frames >= self.segment_frames:
                self.writer.close()
                self.segments.append(str(self.writer.path))
                self._index += 1
                self.writer = self._next_writer()
            self.writer.write(frame)
            self.recorded_frames += 1

    def facts(self) -> dict:
        # A live recording plays in real time, so its frame count follows the clock, not the frames processed:
        # a frame captured within a tick of one that already took that tick is dropped, a late one repeated.
        out = {"recorded_frames": self.recorded_frames, "recording_dropped": self.pacer.dropped}
        if self.pacer.skipped_s:
            out["recording_skipped_s"] = round(self.pacer.skipped_s, 3)
        if self.segments:
            out["segments"] = len(self.segments)
        return out

    def close(self) -> None:
        had = self.writer.frames
        self.writer.close()
        if had and self.segment_frames:
            self.segments.append(str(self.writer.path))

    def describe(self) -> str:
        if self.segment_frames:
            return f"{self.path.parent / (self.path.stem + '_NNNN' + self.path.suffix)} (from {self._index:04d})"
        return str(self.path)
