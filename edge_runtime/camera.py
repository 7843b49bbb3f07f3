"""The camera loop: source → enhance → sink, timed per stage, stopped cleanly by a signal.

::

    grabber thread:  read ─► newest frame (+ capture time) ─┐
    loop:            wait ─► preprocess ─► invoke ─► postprocess ─► compose/overlay ─► sink
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from .config import RuntimeConfig
from .enhance import DEFAULT_HALO, Enhancer
from .fsutil import write_json_atomic
from .grabber import FrameGrabber, SourceLost
from .sinks import open_sink, parse_sink_uri
from .sources import open_source, parse_source_uri
from .stats import LoopStats, format_summary


@dataclass(frozen=True)
class CameraConfig:
    """One camera run.

    Attributes:
        source: source URI (see :mod:`edge_runtime.sources`).
        sink: sink URI (see :mod:`edge_runtime.sinks`).
        model: artifact path; ``None`` = the shipped default.
        runtime: backend options.
        max_frames: stop after this many output frames (``None`` = no limit).
        duration_s: stop after this many seconds (``None`` = no limit).
        overlay: draw FPS and latency on the output.
        compare: output bicubic | enhanced side by side.
        stats_json: write the summary here at exit.
        timeout_s: watchdog period (no frame, or the same frame, for this long).
        retries: reconnect attempts before giving up.
        tile: force tiling of dynamic artifacts at this low-resolution size.
        halo: tile context in low-resolution pixels.
    """

    source: str
    sink: str = "null"
    model: Optional[str] = None
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    max_frames: Optional[int] = None
    duration_s: Optional[float] = None
    overlay: bool = False
    compare: bool = False
    stats_json: Optional[str] = None
    timeout_s: float = 5.0
    retries: int = 5
    tile: Optional[tuple] = None
    halo: int = DEFAULT_HALO


@dataclass
class CameraResult:
    """How the run ended: ``exit_code`` (0 = asked to stop or done, 1 = source lost), ``reason``, ``summary``."""

    exit_code: int
    reason: str
    summary: dict


class _StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks each frame; a second signal stops at once."""

    def __init__(self):
        self.event = threading.Event()
        self.signal_name: Optional[str] = None
        self._old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def draw_overlay(frame: np.ndarray, live: dict) -> None:
    """FPS and latency in the top-left corner, drawn in place."""
    h = frame.shape[0]
    scale = max(0.4, h / 900)
    thick = max(1, int(round(scale * 2)))
    lat, inv = live.get("latency_ms"), live.get("invoke_ms")
    lines = [f"{live.get('fps', 0.0):.1f} FPS",
             f"latency {lat:.0f} ms" if lat is not None else "latency -",
             f"invoke {inv:.0f} ms" if inv is not None else "invoke -"]
    y = int(22 * scale / 0.5)
    for text in lines:
        for color, t in (((0, 0, 0), thick + 2), ((255, 255, 255), thick)):
            cv2.putText(frame, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, t, cv2.LINE_AA)
        y += int(20 * scale / 0.5)


def side_by_side(bicubic: np.ndarray, enhanced: np.ndarray) -> np.ndarray:
    """``bicubic | enhanced``, each labelled in its top-right corner."""
    out = np.hstack([bicubic, enhanced])
    h, w = enhanced.shape[:2]
    scale = max(0.4, h / 900)
    for right, text in ((w, "bicubic"), (2 * w, "enhanced")):
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        for color, t in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(out, text, (right - tw - 8, th + 8), cv2.FONT_HERSHEY_SIMPLEX, scale, color, t, cv2.LINE_AA)
    cv2.line(out, (w, 0), (w, h - 1), (255, 255, 255), 1)
    return out


def run_camera(cfg: CameraConfig, say: Callable[[str], None] = print) -> CameraResult:
    """Run the loop until ``max_frames``, ``duration_s``, the end of a file source, a signal, or a lost source.

    The output file is finished and the camera released whatever ends the run; the summary is printed with
    ``say`` and written to ``cfg.stats_json``.

    Raises:
        UserError: bad model, source or sink (before anything runs).
    """
    # A typo in either URI fails before anything is opened.
    parse_source_uri(cfg.source)
    parse_sink_uri(cfg.sink)
    source = open_source(cfg.source)
    sink = None
    try:
        sink = open_sink(cfg.sink, fps=source.fps or 30.0)
        enhancer = Enhancer(cfg.model, cfg.runtime, tile=cfg.tile, halo=cfg.halo)
    except BaseException:
        source.close()
        if sink is not None:
            sink.close()
        raise
    desc = enhancer.describe()
    stats = LoopStats({"source": source.describe(), "sink": sink.describe(), "model": desc["model"],
                       "format": desc["format"], "backend": desc["backend"],
                       "runtime": desc.get("runtime"), "scale": enhancer.scale, "compare": cfg.compare})
    sink.stats_provider = stats.live
    grabber = FrameGrabber(source, timeout_s=cfg.timeout_s, retries=cfg.retries)
    say(f"running: {source.describe()} -> {desc['model']} ({desc['backend']}, {desc['format']}) -> "
        f"{sink.describe()}; Ctrl-C to stop")
    reason, code = "", 0
    with _StopFlag() as stop:
        grabber.start()
        try:
            wait_from = time.perf_counter()
            while True:
                if stop.event.is_set():
                    reason = f"stopped by {stop.signal_name}"
                    break
                if cfg.max_frames is not None and stats.frames >= cfg.max_frames:
                    reason = f"{cfg.max_frames} frames done"
                    break
                if cfg.duration_s is not None and time.perf_counter() - stats.started_s >= cfg.duration_s:
                    reason = f"{cfg.duration_s:g} s done"
                    break
                if sink.closed_by_user:
                    reason = "window closed"
                    break
                frame = grabber.get(timeout=0.1)
                if frame is None:
                    if grabber.ended:
                        reason = "end of the source"
                        break
                    continue
                got = time.perf_counter()
                out = enhancer(frame.image)
                t_enh = time.perf_counter()
                if stats.frames == 0:
                    h, w = frame.image.shape[:2]
                    stats.note(input_size=f"{w}x{h}", output_size=f"{out.shape[1]}x{out.shape[0]}")
                if cfg.compare:
                    out = side_by_side(enhancer.bicubic(frame.image), out)
                if cfg.overlay:
                    draw_overlay(out, stats.live())
                sink.write(out)
                done = time.perf_counter()
                stats.add(capture_wait=(got - wait_from) * 1e3, **enhancer.last_timing_ms,
                          output=(done - t_enh) * 1e3, latency=(done - frame.captured_s) * 1e3)
                stats.note(dropped_frames=grabber.dropped, reconnects=grabber.reconnects)
                wait_from = done
        except SourceLost as exc:
            reason, code = f"error: {exc}", 1
        finally:
            grabber.stop()
            sink.close()
    stats.note(dropped_frames=grabber.dropped, reconnects=grabber.reconnects)
    summary = stats.summary()
    summary.update(exit_reason=reason, enhancer=desc)
    if cfg.stats_json:
        write_json_atomic(Path(cfg.stats_json), summary)
    (say if code == 0 else _stderr)(reason)
    say(format_summary(summary))
    return CameraResult(code, reason, summary)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
