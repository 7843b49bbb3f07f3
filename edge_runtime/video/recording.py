"""Recording that cannot silently lose data: write checks, a final proof, real-time pacing, killed runs' leftovers.

* OpenCV's ``VideoWriter.write`` reports a full disk or a file-size limit only by a ``False`` return (4.x
  builds return ``None`` and print ``Failed to write frame``), and ``release`` then writes an MP4 without its
  ``moov`` atom that no player opens. :class:`WriteGuard` checks every write's result and, about once a
  second, the free space and ``RLIMIT_FSIZE``; :func:`verify_video` reopens the finished file and counts its
  frames before it may replace anything.
* :class:`FramePacer` makes a live recording's timing match real time: frames are written once per tick of the
  file's frame rate by their capture time (repeated when the loop is slower than the source, dropped when two
  land in one tick), as constant-frame-rate recorders do.
* A run killed by SIGKILL or a power cut leaves its hidden temporary file behind. Writers hold an ``flock`` on
  theirs, so :func:`stale_temps` can tell a dead run's file (no lock, not touched for a while) from a live one.
"""

from __future__ import annotations

import fcntl
import math
import os
import resource
import time
from pathlib import Path
from typing import Optional

from deconv_edge_core.errors import UserError

#: Refuse to go on recording with less free space than this (the MP4 index is written at the end).
MIN_FREE_BYTES = 4 << 20
#: Seconds a temporary file must be untouched (and unlocked) before it counts as left by a killed run.
STALE_AFTER_S = 10.0
#: A stall or reconnect longer than this is not filled with repeated frames (the loop must not block).
MAX_REPEAT_S = 5.0


class RecordingFailed(UserError):
    """The recording could not be written; the temporary file is dropped and the previous file kept."""


class WriteGuard:
    """Checks each write of a file being recorded, and the room left, about once per ``every`` frames.

    Args:
        path: the final file (for messages).
        tmp: the temporary file being written.
        every: frames between free-space checks.
    """

    def __init__(self, path: Path, tmp: Path, every: int = 30):
        self.path, self.tmp, self.every = Path(path), Path(tmp), max(1, int(every))
        self._since = 0

    def after_write(self, result, frames: int) -> None:
        """Call after each ``VideoWriter.write``; ``result`` is what it returned.

        Raises:
            RecordingFailed: the write failed or the disk is (nearly) full.
        """
        if result is False:
            self.fail(frames, self._why())
        self._since += 1
        if self._since >= self.every:
            self._since = 0
            why = self._room_problem()
            if why:
                self.fail(frames, why)

    def fail(self, frames: int, why: str) -> None:
        raise RecordingFailed(f"cannot record '{self.path}': {why} after {frames} frame(s); nothing was kept "
                              f"under that name (an earlier file there is untouched); free space or write elsewhere")

    def _why(self) -> str:
        return self._room_problem() or "the video encoder refused a frame (disk full or I/O error)"

    def _room_problem(self) -> Optional[str]:
        try:
            st = os.statvfs(self.tmp.parent)
            size = self.tmp.stat().st_size
        except OSError:
            return None
        free = st.f_bavail * st.f_frsize
        if free < MIN_FREE_BYTES:
            return f"the disk is full ({free // 1024} KB left)"
        soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY and size + MIN_FREE_BYTES > soft:
            return f"the file-size limit (ulimit -f, {soft // 1024} KB) is reached"
        return None


def verify_video(path: Path, frames: int, what: Path) -> None:
    """Reopen a finished video and check it holds ``frames`` frames.

    Raises:
        RecordingFailed: it does not open, or holds another number of frames.
    """
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise RecordingFailed(f"cannot record '{what}': the finished file does not open (disk full or I/O error "
                                  "while closing it); nothing was kept under that name; free space or write elsewhere")
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    # Containers without an index report 0 or -1: the open above is then the proof we have.
    if count and count > 0 and int(round(count)) != frames:
        raise RecordingFailed(f"cannot record '{what}': the finished file holds {int(count)} of {frames} frames "
                              "(disk full or I/O error); nothing was kept under that name")


class TempLock:
    """An exclusive ``flock`` held on a temporary file while it is written (released by the kernel at death)."""

    def __init__(self, path: Path):
        self._fd: Optional[int] = None
        try:
            self._fd = os.open(path, os.O_RDONLY)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.release()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def stale_temps(path: Path, segments: bool = False) -> list[Path]:
    """Temporary files of ``path`` (``.STEM.tmp-*SUFFIX``; of its segments ``STEM_NNNN`` too) left by killed runs.

    A file counts when no process holds its lock and it was not modified for :data:`STALE_AFTER_S`.
    """
    path = Path(path)
    found = []
    stem = f"{path.stem}_[0-9][0-9][0-9][0-9]" if segments else path.stem
    try:
        candidates = sorted(path.parent.glob(f".{stem}.tmp-*{path.suffix}"))
    except OSError:
        return []
    for tmp in candidates:
        try:
            if time.time() - tmp.stat().st_mtime < STALE_AFTER_S:
                continue
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            found.append(tmp)
        except OSError:
            pass  # a live run holds it
        finally:
            os.close(fd)
    return found


def remove_stale_temps(path: Path, say, segments: bool = False) -> int:
    """Delete what :func:`stale_temps` finds (an MP4 without its index does not play), saying so with ``say``."""
    removed = 0
    for tmp in stale_temps(path, segments):
        try:
            size = tmp.stat().st_size
            tmp.unlink()
        except OSError:
            continue
        removed += 1
        say(f"warning: removed '{tmp}' ({size / 1e6:.1f} MB), the unfinished recording of a run that was killed "
            "(it could not be played); record with --segment SECONDS to keep all but the last segment")
    return removed


class FramePacer:
    """How many times to write each frame so that a file at ``fps`` plays in real time.

    Args:
        fps: the file's frame rate.
        max_repeat_s: longest gap filled with repeats.
    """

    def __init__(self, fps: float, max_repeat_s: float = MAX_REPEAT_S):
        self.fps = float(fps)
        self.max_repeat = max(1, int(math.ceil(max_repeat_s * self.fps)))
        self._t0: Optional[float] = None
        self._next_slot = 0
        #: frames not written because an earlier one already covered their tick
        self.dropped = 0
        #: seconds of stalls longer than ``max_repeat_s`` that the file skips
        self.skipped_s = 0.0

    def copies(self, captured_s: Optional[float]) -> int:
        """Times to write the frame captured at ``captured_s`` (``time.perf_counter``); ``None``: once."""
        if captured_s is None:
            return 1
        if self._t0 is None:
            self._t0 = captured_s
        # Position in ticks of the file's rate, against the next free tick. Up to one tick early still takes
        # it: capture jitter (one frame late, the next on time) must not drop a frame and repeat another.
        ahead = (captured_s - self._t0) * self.fps - self._next_slot
        if ahead < -1.0:
            self.dropped += 1  # the loop runs faster than the file's rate
            return 0
        n = max(1, int(round(ahead)) + 1)
        if n > self.max_repeat:
            self.skipped_s += (n - self.max_repeat) / self.fps
            self._t0 += (n - self.max_repeat) / self.fps  # the file skips the rest of a long stall
            n = self.max_repeat
        self._next_slot += n
        return n


def segment_path(path: Path, index: int) -> Path:
    """``out.mp4``, 3 → ``out_0003.mp4``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_{index:04d}{path.suffix}")


def next_segment_index(path: Path) -> int:
    """One past the highest existing segment of ``path``: a restarted recorder never overwrites earlier ones."""
    path = Path(path)
    taken = [int(p.stem[len(path.stem) + 1:]) for p in path.parent.glob(f"{path.stem}_[0-9][0-9][0-9][0-9]{path.suffix}")]
    return max(taken) + 1 if taken else 0
