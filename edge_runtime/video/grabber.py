"""Latest-frame grabbing with a watchdog: a camera read in its own thread, reconnected when it stalls.

Reading a camera in the inference loop hands out frames that waited in the driver's queue for one or more
inference periods. A grabber thread reads continuously and keeps only the newest frame (with the time it
arrived), so the loop always works on the most recent picture; for files it hands over every frame instead.

Watchdog: a read that blocks for ``timeout_s``, a failed read, or the same frame repeated for ``timeout_s``
(a frozen driver or a capture card without signal) closes the source and opens it again, waiting
``backoff_s``, 2·``backoff_s``... (at most ``max_backoff_s``) between tries; after ``retries`` tries without a
frame, :meth:`FrameGrabber.get` raises :class:`SourceLost` with the reason.
"""

from __future__ import annotations

import sys
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from deconv_edge_core.redact import redact
from edge_runtime.inference.color import as_bgr

from .sources import Source


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    Attributes:
        image: uint8 BGR.
        captured_s: ``time.perf_counter()`` when the read returned it.
        index: 1-based count of frames captured (dropped ones included).
    """

    image: np.ndarray
    captured_s: float
    index: int


class SourceLost(Exception):
    """The source stopped delivering and reconnecting did not help; the message says why."""


def _log(msg: str) -> None:
    print(redact(msg), file=sys.stderr, flush=True)


class FrameGrabber:
    """Reads an opened :class:`~edge_runtime.video.sources.Source` in a thread.

    Args:
        source: an opened source; the grabber owns it from now on (and closes it).
        timeout_s: watchdog period: a read blocked this long, or the same frame for this long, is a stall.
        retries: reconnect attempts after a stall before giving up.
        backoff_s: wait before the first reconnect; doubles each try up to ``max_backoff_s``.
        log: where reconnect messages go (stderr by default).
    """

    def __init__(self, source: Source, *, timeout_s: float = 5.0, retries: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, log: Callable[[str], None] = _log):
        self.timeout_s, self.retries = float(timeout_s), int(retries)
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self.log = log
        #: frames captured but replaced by a newer one before the consumer took them
        self.dropped = 0
        #: successful reopens
        self.reconnects = 0
        self._src = source
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._gen = 0
        self._state = "running"  # running | ended | lost | stopped
        self._message = ""
        self._latest: Optional[Frame] = None
        self._taken = True
        self._count = 0
        self._attempts = 0
        self._failure: Optional[tuple] = None  # (generation, reason) reported by a worker
        self._reading_since: Optional[float] = None
        self._threads: list = []

    # -- consumer side -------------------------------------------------------------------------------
    def start(self) -> FrameGrabber:
        self._start_worker(0, self._src)
        sup = threading.Thread(target=self._supervise, name="grabber-watchdog", daemon=True)
        sup.start()
        self._threads.append(sup)
        return self

    def get(self, timeout: float = 0.1) -> Optional[Frame]:
        """The newest frame not handed out yet; ``None`` after ``timeout`` s or once the source has ended.

        Raises:
            SourceLost: the watchdog gave up on the source.
        """
        deadline = time.perf_counter() + timeout
        with self._cond:
            while True:
                if self._latest is not None and not self._taken:
                    self._taken = True
                    self._cond.notify_all()
                    return self._latest
                if self._state == "lost":
                    raise SourceLost(self._message)
                if self._state != "running":
                    return None
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    @property
    def ended(self) -> bool:
        """A file or folder source delivered its last frame (and it was taken)."""
        with self._cond:
            return self._state == "ended" and self._taken

    def stop(self, join_timeout_s: float = 2.0) -> None:
        """Stop reading and release the source (waits up to ``join_timeout_s`` per thread for a read to return)."""
        self._stop.set()
        with self._cond:
            if self._state == "running":
                self._state = "stopped"
            self._gen += 1
            self._src.abandoned = True
            self._cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                # A driver blocked in read() may never return: the threads are daemons, we do not hang on them.
                t.join(timeout=join_timeout_s)

    # -- threads -------------------------------------------------------------------------------------
    def _start_worker(self, gen: int, src: Source) -> None:
        t = threading.Thread(target=self._work, args=(gen, src), name=f"grabber-{gen}", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _current(self, gen: int) -> bool:
        return gen == self._gen and self._state == "running"

    def _work(self, gen: int, src: Source) -> None:
        last_sig, same_since = None, 0.0
        try:
            while True:
                with self._cond:
                    if not self._current(gen):
                        return
                    self._reading_since = time.perf_counter()
                img = src.read()
                now = time.perf_counter()
                with self._cond:
                    if not self._current(gen):
                        return
                    self._reading_since = None
                if img is None:
                    if not src.live:
                        self._finish("ended", "")
                    else:
                        self._report(gen, "the read failed")
                    return
                img = as_bgr(img)
                if src.live:
                    # Sensor noise makes every real camera frame differ; bit-identical frames mean a frozen
                    # driver or a capture card without signal. (A perfectly static, heavily compressed RTSP
                    # scene can repeat too: it then reconnects once per timeout, and carries on.)
                    sig = (img.shape, zlib.crc32(img[::4].tobytes()))
                    if sig == last_sig:
                        if now - same_since >= self.timeout_s:
                            self._report(gen, f"the same frame for {self.timeout_s:g} s")
                            return
                        continue
                    last_sig, same_since = sig, now
                self._publish(gen, img, now, src.live)
        except Exception as exc:  # noqa: BLE001 - a driver error must reconnect, not kill the thread silently
            self._report(gen, f"{type(exc).__name__}: {exc}")
        finally:
            src.close()

    def _publish(self, gen: int, img: np.ndarray, captured_s: float, live: bool) -> None:
        with self._cond:
            # Files: every frame, at the consumer's pace. Cameras: overwrite, count the drop.
            while not live and not self._taken and self._current(gen):
                self._cond.wait(0.1)
            if not self._current(gen):
                return
            if not self._taken:
                self.dropped += 1
            self._count += 1
            self._latest = Frame(img, captured_s, self._count)
            self._taken = False
            self._attempts = 0
            self._cond.notify_all()

    def _report(self, gen: int, reason: str) -> None:
        with self._cond:
            if self._current(gen):
                self._failure = (gen, reason)
                self._cond.notify_all()

    def _finish(self, state: str, message: str) -> None:
        with self._cond:
            if self._state == "running":
                self._state, self._message = state, redact(message)
            self._cond.notify_all()

    def _supervise(self) -> None:
        while True:
            with self._cond:
                reason = None
                while reason is None:
                    if self._state != "running":
                        return
                    if self._failure is not None and self._failure[0] == self._gen:
                        reason = self._failure[1]
                    elif self._reading_since is not None and \
                            time.perf_counter() - self._reading_since >= self.timeout_s:
                        reason = f"no frame for {self.timeout_s:g} s"
                    else:
                        self._cond.wait(0.05)
                self._failure = None
                self._reading_since = None
                self._gen += 1  # the old worker, if it ever returns, publishes nothing
                old = self._src
                old.abandoned = True
            if not self._reconnect(old, reason):
                return

    def _reconnect(self, old: Source, reason: str) -> bool:
        """Reopen with backoff; ``False`` once given up or stopped."""
        name = old.describe()
        while True:
            self._attempts += 1
            if self._attempts > self.retries:
                self._finish("lost", f"source '{name}' stopped delivering ({reason}); gave up after "
                                     f"{self.retries} reconnect attempt{'s' if self.retries != 1 else ''}")
                return False
            delay = min(self.backoff_s * 2 ** (self._attempts - 1), self.max_backoff_s)
            # Reasons quote library errors, which may hold the stream URL with its password.
            self.log(redact(f"source '{name}': {reason}; reconnecting in {delay:.1f} s "
                            f"(attempt {self._attempts}/{self.retries})"))
            if self._stop.wait(delay):
                return False
            src = old.reopen()
            try:
                src.open()
            except Exception as exc:  # noqa: BLE001 - any failure to reopen is one failed attempt
                reason = f"reopening failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                continue
            with self._cond:
                if self._state != "running":
                    src.close()
                    return False
                self._src = src
                self.reconnects += 1
                gen = self._gen
            self._start_worker(gen, src)
            return True
