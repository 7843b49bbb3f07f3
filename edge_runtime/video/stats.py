"""Per-stage timing of the camera loop: live numbers for the preview, a summary at exit."""

from __future__ import annotations

import collections
import threading
import time
from array import array
from typing import Optional

import numpy as np

#: Loop stages, in order (milliseconds each). ``latency`` is capture → output written, the sum of the others
#: plus the time the frame waited in the grabber.
STAGES = ("capture_wait", "preprocess", "invoke", "postprocess", "output", "latency")
STAGE_LABELS = {"capture_wait": "capture wait", "preprocess": "preprocess", "invoke": "invoke",
                "postprocess": "postprocess", "output": "output", "latency": "capture-to-output latency"}
#: Samples kept per stage for percentiles (about an hour at 30 FPS); means and maxima cover the whole run.
MAX_SAMPLES = 100_000
#: Seconds of history behind the live FPS and latency.
LIVE_WINDOW_S = 2.0


class LoopStats:
    """Collects one sample per stage per frame; thread-safe (the preview server reads it live).

    Args:
        info: constant facts shown with the numbers (model, backend, source, sink, sizes).
    """

    def __init__(self, info: Optional[dict] = None):
        self.info = dict(info or {})
        self._lock = threading.Lock()
        # Flat arrays of doubles (8 bytes a sample; a deque of floats takes ~4x that, which the soak shows).
        self._samples = {s: array("d") for s in STAGES}
        self._sum = dict.fromkeys(STAGES, 0.0)
        self._max = dict.fromkeys(STAGES, 0.0)
        self._recent: collections.deque = collections.deque()  # (t, latency_ms, invoke_ms)
        self.frames = 0
        self.started_s = time.perf_counter()

    def add(self, **stage_ms: float) -> None:
        """Record one frame: ``add(capture_wait=.., preprocess=.., ..., latency=..)``."""
        now = time.perf_counter()
        with self._lock:
            self.frames += 1
            for s in STAGES:
                v = float(stage_ms.get(s, 0.0))
                samples = self._samples[s]
                samples.append(v)
                if len(samples) > MAX_SAMPLES + MAX_SAMPLES // 8:
                    del samples[:len(samples) - MAX_SAMPLES]  # keep the newest, trimmed in chunks
                self._sum[s] += v
                self._max[s] = max(self._max[s], v)
            self._recent.append((now, stage_ms.get("latency", 0.0), stage_ms.get("invoke", 0.0)))
            while self._recent and now - self._recent[0][0] > LIVE_WINDOW_S:
                self._recent.popleft()

    def note(self, **facts) -> None:
        """Add or update facts shown with the numbers (sizes once known, dropped frames, reconnects)."""
        with self._lock:
            self.info.update(facts)

    def live(self) -> dict:
        """FPS and latency over the last couple of seconds, plus the run so far (for overlays and the preview)."""
        now = time.perf_counter()
        with self._lock:
            recent = [r for r in self._recent if now - r[0] <= LIVE_WINDOW_S]
            fps = (len(recent) - 1) / (recent[-1][0] - recent[0][0]) if len(recent) > 1 and recent[-1][0] > recent[0][0] else 0.0
            last = {s: round(self._samples[s][-1], 2) for s in STAGES if self._samples[s]}
            return {
                "frames": self.frames,
                "elapsed_s": round(now - self.started_s, 2),
                "fps": round(fps, 2),
                "latency_ms": round(float(np.mean([r[1] for r in recent])), 2) if recent else None,
                "invoke_ms": round(float(np.mean([r[2] for r in recent])), 2) if recent else None,
                "last_ms": last,
                **self.info,
            }

    def summary(self) -> dict:
        """The whole run: frames, wall time, FPS, and mean / p50 / p95 / max per stage (ms)."""
        with self._lock:
            wall = time.perf_counter() - self.started_s
            stages = {}
            for s in STAGES:
                data = np.asarray(self._samples[s], dtype=np.float64)
                if not data.size:
                    continue
                p50, p95 = np.percentile(data, [50, 95])
                stages[s] = {"mean_ms": round(self._sum[s] / self.frames, 3), "p50_ms": round(float(p50), 3),
                             "p95_ms": round(float(p95), 3), "max_ms": round(self._max[s], 3)}
            return {"frames": self.frames, "wall_s": round(wall, 3),
                    "fps": round(self.frames / wall, 2) if wall > 0 else 0.0, "stages": stages, **self.info}


def format_summary(summary: dict) -> str:
    """The summary as a small table for the terminal."""
    lines = [f"{summary['frames']} frames in {summary['wall_s']:.1f} s ({summary['fps']:.1f} FPS)"]
    facts = [f"{k.replace('_', ' ')}: {summary[k]}" for k in ("source", "sink", "input_size", "output_size",
                                                              "model", "backend", "dropped_frames", "reconnects")
             if summary.get(k) not in (None, "")]
    lines += ["  " + ", ".join(facts[i:i + 3]) for i in range(0, len(facts), 3)]
    if summary["stages"]:
        width = max(len(v) for v in STAGE_LABELS.values())
        lines.append(f"  {'stage (ms)':<{width}}  {'mean':>8} {'p50':>8} {'p95':>8} {'max':>8}")
        for s in STAGES:
            st = summary["stages"].get(s)
            if st:
                lines.append(f"  {STAGE_LABELS[s]:<{width}}  {st['mean_ms']:8.2f} {st['p50_ms']:8.2f} "
                             f"{st['p95_ms']:8.2f} {st['max_ms']:8.2f}")
    return "\n".join(lines)
