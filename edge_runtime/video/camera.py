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

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import write_json_atomic
from deconv_edge_core.live import LiveLine
from deconv_edge_core.outputs import check_output_file, same_file
from deconv_edge_core.redact import redact
from edge_runtime.inference.config import RuntimeConfig
from edge_runtime.inference.enhance import Enhancer

from .grabber import FrameGrabber, SourceLost
from .sinks import open_sink, parse_sink_uri
from .sources import open_source, parse_source_uri
from .stats import LoopStats, format_summary


@dataclass(frozen=True)
class CameraConfig:
    """One camera run.

    Attributes:
        source: source URI (see :mod:`edge_runtime.video.sources`).
        sink: sink URI (see :mod:`edge_runtime.video.sinks`).
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
        segment_s: with a video file sink, start a new file every this many seconds (``NAME_0000.mp4``...).
        strength: a noise-map denoiser's σ (8-bit steps); the browser preview can change it live.
        task: if set, the model must be of this task (``super-resolution`` or ``denoise``).
        chroma: a noise-map denoiser on colour frames: ``denoise`` (default) or ``keep`` (luma only).
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
    halo: Optional[int] = None
    segment_s: Optional[float] = None
    strength: Optional[float] = None
    task: Optional[str] = None
    chroma: Optional[str] = None


@dataclass
class CameraResult:
    """How the run ended: ``exit_code`` (0 = asked to stop or done, 1 = source lost), ``reason``, ``summary``."""

    exit_code: int
    reason: str
    summary: dict


class _StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks each frame; a second signal stops without waiting.

    No signal ever abandons the recording: two Ctrl-C 50 ms apart used to raise ``KeyboardInterrupt`` in the
    middle of finishing the file and lose all of it. Now a repeated signal only sets :attr:`hurry` (the loop
    stops without waiting for the camera thread) and the file is finished either way; once stopped by a
    signal, later ones are ignored until the process exits. (Nothing is printed in the handler: a print there
    can interrupt another print, which raises.)
    """

    def __init__(self):
        self.event = threading.Event()
        self.hurry = threading.Event()
        self.signal_name: Optional[str] = None
        self.repeats = 0
        self._old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.event.is_set():
            self.repeats += 1
            self.hurry.set()
            return
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            # Asked to stop and done: a late repeat (Ctrl-C pressed twice, 50 ms apart) must not turn a finished
            # run into a killed one on its way out.
            signal.signal(sig, signal.SIG_IGN if self.event.is_set() else old)


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


def status_line(live: dict, frames: int, dropped: int, reconnects: int) -> str:
    """The camera's live terminal line."""
    lat, inv = live.get("latency_ms"), live.get("invoke_ms")
    return (f"{live.get('fps', 0.0):5.1f} FPS  latency {'-' if lat is None else f'{lat:.0f}'} ms  invoke "
            f"{'-' if inv is None else f'{inv:.0f}'} ms  {frames} frames  dropped {dropped}  reconnects {reconnects}"
            "  (Ctrl-C stops)")


def side_by_side(bicubic: np.ndarray, enhanced: np.ndarray, labels: tuple = ("bicubic", "enhanced")) -> np.ndarray:
    """``bicubic | enhanced`` (a denoiser: ``noisy | denoised``), each labelled in its top-right corner."""
    out = np.hstack([bicubic, enhanced])
    h, w = enhanced.shape[:2]
    scale = max(0.4, h / 900)
    for right, text in ((w, labels[0]), (2 * w, labels[1])):
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
    # A typo in either URI, or an output that cannot be written, fails before anything is opened.
    source_spec = parse_source_uri(cfg.source)
    sink_spec = parse_sink_uri(cfg.sink)
    _check_outputs(cfg, source_spec, sink_spec)
    source = open_source(cfg.source)
    sink = None
    try:
        options = {"segment_s": cfg.segment_s} if cfg.segment_s else {}
        sink = open_sink(cfg.sink, fps=source.fps or 30.0, **options)
        enhancer = Enhancer(cfg.model, cfg.runtime, tile=cfg.tile, halo=cfg.halo, strength=cfg.strength,
                            task=cfg.task, chroma=cfg.chroma)
    except BaseException:
        source.close()
        if sink is not None:
            sink.close()
        raise
    desc = enhancer.describe()
    stats = LoopStats(redact({"source": source.describe(), "sink": sink.describe(), "model": desc["model"],
                              "format": desc["format"], "backend": desc["backend"],
                              "runtime": desc.get("runtime"), "task": enhancer.task, "scale": enhancer.scale,
                              "compare": cfg.compare}))
    sink.stats_provider = stats.live
    if enhancer.strength is not None:
        stats.info["strength"] = enhancer.strength
        stats.info["strength_range"] = list(enhancer.manifest.noise.sigma_range)
        if hasattr(sink, "controls"):  # the browser preview's slider

            def set_strength(value: float) -> float:
                stats.info["strength"] = enhancer.set_strength(value)
                return stats.info["strength"]

            sink.controls["strength"] = set_strength
    grabber = FrameGrabber(source, timeout_s=cfg.timeout_s, retries=cfg.retries)
    say(redact(f"running: {source.describe()} -> {desc['model']} ({desc['backend']}, {desc['format']}) -> "
               f"{sink.describe()}; Ctrl-C to stop"))
    reason, code = "", 0
    status = LiveLine()  # on a terminal: FPS, latency, dropped frames and reconnects, kept up to date
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
                    out = side_by_side(enhancer.bicubic(frame.image), out,
                                       ("noisy", "denoised") if enhancer.task == "denoise" else ("bicubic", "enhanced"))
                if cfg.overlay:
                    draw_overlay(out, stats.live())
                # Live frames carry their capture time: a recording then plays in real time.
                sink.write_timed(out, frame.captured_s if source.live else None)
                done = time.perf_counter()
                stats.add(capture_wait=(got - wait_from) * 1e3, **enhancer.last_timing_ms,
                          output=(done - t_enh) * 1e3, latency=(done - frame.captured_s) * 1e3)
                stats.note(dropped_frames=grabber.dropped, reconnects=grabber.reconnects)
                if status.due():
                    status.update(status_line(stats.live(), stats.frames, grabber.dropped, grabber.reconnects))
                wait_from = done
        except SourceLost as exc:
            reason, code = f"error: {exc}", 1
        finally:
            status.clear()
            # Runs whatever ended the loop, and no signal interrupts it (see _StopFlag).
            grabber.stop(join_timeout_s=0.2 if stop.hurry.is_set() else 2.0)
            sink.close()
        # Still under the handlers: a signal during the summary must not kill the run half-way.
        if stop.repeats:
            reason += f" ({stop.repeats + 1} signals; the output was still finished)"
        skipped = getattr(source, "skipped", 0)
        if skipped:
            stats.note(skipped_files=skipped)
        if code == 0 and stats.frames == 0 and reason == "end of the source":
            reason, code = (f"error: source '{source.describe()}' delivered no frame"
                            + (f" ({skipped} unreadable file(s) skipped)" if skipped else "")
                            + "; check that it holds pictures or video OpenCV can decode"), 1
        stats.note(dropped_frames=grabber.dropped, reconnects=grabber.reconnects)
        stats.note(**sink.facts())
        summary = redact(stats.summary())
        summary.update(exit_reason=redact(reason), enhancer=desc)
        if cfg.stats_json:
            write_json_atomic(Path(cfg.stats_json), summary)
        reason = redact(reason)
        (say if code == 0 else _stderr)(reason)
        say(format_summary(summary))
        return CameraResult(code, reason, summary)


def _check_outputs(cfg: CameraConfig, source_spec, sink_spec) -> None:
    """Refuse outputs that would destroy the input or each other, or cannot be written (before opening anything).

    Raises:
        UserError: with what to do.
    """
    inputs = [source_spec.target] if source_spec.scheme in ("file", "dir") else []
    outputs = []
    if sink_spec.scheme == "file":
        check_output_file(sink_spec.target, "--sink")
        outputs.append(("--sink", sink_spec.target))
    elif cfg.segment_s:
        raise UserError(f"--segment records files: give a video file as --sink, not '{cfg.sink}'")
    if cfg.stats_json:
        check_output_file(cfg.stats_json, "--stats-json")
        outputs.append(("--stats-json", cfg.stats_json))
    for what, out in outputs:
        for src in inputs:
            if same_file(out, src):
                raise UserError(f"{what} '{out}' is the source '{src}': it would overwrite its own input; "
                                "give another output name")
    if len(outputs) == 2 and same_file(outputs[0][1], outputs[1][1]):
        raise UserError(f"--sink and --stats-json are the same file '{outputs[0][1]}'; give two names")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
