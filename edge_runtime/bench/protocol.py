"""The worker's side of the bench protocol: one case, timed in-process, answering on a JSON-lines pipe.

Protocol (any program that speaks it can be a case, e.g. ``benchmarks/peer_worker.py`` in another venv):

- ``argv[1]`` is the :class:`~edge_runtime.bench.config.CaseSpec` as JSON. The worker imports what it needs,
  notes its RSS (the baseline), loads the case (timed: ``load_ms``), makes the first model call and the first
  frame (timed: ``first_inference_ms``, ``first_frame_ms``) and prints
  ``{"ok": true, "event": "ready", "load_ms": …, "first_inference_ms": …, "first_frame_ms": …, "info": {…}}``.
- ``{"cmd": "step", "n": N}`` on stdin: N iterations, each one model call then one frame; answer
  ``{"ok": true, "event": "samples", "model_ms": […], "frame_ms": […], "stages_ms": {"preprocess": […], …}}``.
- ``{"cmd": "finish"}``: answer ``{"ok": true, "event": "finished", "peak_rss_mb": …, "baseline_rss_mb": …,
  "graph": {"macs_per_call", "macs_source", "ops", "coverage"}}`` (peak RSS is read *before* the graph is
  analysed) and exit. End of stdin also exits.
- Any failure: ``{"ok": false, "error": "one line"}`` and exit status 1.

Native libraries sometimes print to stdout, which would corrupt the stream: file descriptor 1 is pointed at
stderr and the protocol writes to a private duplicate of the original stdout.

Standard library and the kernel only (numpy and OpenCV are imported inside the runners' methods): the peer's
worker runs this module in a venv that has nothing else of this project.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, Optional

from deconv_edge_core.text import one_line

from .config import CaseSpec


def peak_rss_mb() -> Optional[float]:
    """Peak resident set size of this process so far (MiB)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def synthetic_frame(h: int, w: int, seed: int = 0):
    """A deterministic uint8 BGR picture with gradients, edges and texture (content does not change the
    models' cost, but a realistic value spread keeps quantized paths honest)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 128 + 90 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    img[..., 1] = 255 * xx / max(w - 1, 1)
    img[..., 2] = 255 * yy / max(h - 1, 1)
    img += rng.normal(0, 10, img.shape)
    img[h // 4:h // 2, w // 4:w // 2] = 240
    return np.clip(img, 0, 255).astype(np.uint8)


def ms(t0: float, t1: float) -> float:
    """Milliseconds between two ``time.perf_counter`` readings."""
    return (t1 - t0) * 1e3


class Runner:
    """One case inside the worker. ``prepare`` (imports, inputs) is not timed; ``load`` is.

    Args:
        spec: the case.
    """

    def __init__(self, spec: CaseSpec):
        self.spec = spec

    def prepare(self) -> None:
        """Imports and inputs: the synthetic frame, OpenCV's thread budget."""
        import cv2

        # OpenCV's pool is process-wide: the frame path gets the same thread budget as the model.
        cv2.setNumThreads(int(self.spec.threads))
        h, w = self.spec.input_hw
        self.frame = synthetic_frame(int(h), int(w))

    def load(self) -> None:
        """What ``load_ms`` measures."""

    def first(self) -> tuple:
        """(first_inference_ms, first_frame_ms)."""
        m, f, _ = self.step()
        return m, f

    def step(self) -> tuple:
        """(model_ms, frame_ms, stages_ms) of one iteration; ``frame_ms`` is ``None`` where there is no frame."""
        raise NotImplementedError

    def info(self) -> dict:
        """Static facts for :class:`~edge_runtime.bench.results.CaseInfo`."""
        return {}

    def graph(self) -> dict:
        """MACs per call, op types and coverage (:class:`~edge_runtime.bench.results.GraphInfo`)."""
        return {}


def serve(spec: CaseSpec, make_runner: Callable[[CaseSpec], Runner], out, commands) -> int:
    """Run the protocol for ``spec``: write answers to ``out``, read commands from ``commands``."""

    def say(payload: dict) -> None:
        out.write(json.dumps(payload) + "\n")
        out.flush()

    try:
        runner = make_runner(spec)
        runner.prepare()
        baseline = peak_rss_mb()
        t0 = time.perf_counter()
        runner.load()
        load_ms = ms(t0, time.perf_counter())
        first_model, first_frame = runner.first()
        say({"ok": True, "event": "ready", "load_ms": load_ms, "first_inference_ms": first_model,
             "first_frame_ms": first_frame, "info": runner.info()})
        for line in commands:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("cmd") == "step":
                model, frame, stages = [], [], {}
                for _ in range(int(cmd.get("n", 1))):
                    m, f, st = runner.step()
                    model.append(m)
                    frame.append(f)
                    for k, v in st.items():
                        stages.setdefault(k, []).append(v)
                say({"ok": True, "event": "samples", "model_ms": model, "frame_ms": frame, "stages_ms": stages})
            elif cmd.get("cmd") == "finish":
                peak = peak_rss_mb()
                try:
                    graph = runner.graph()
                except Exception as exc:  # noqa: BLE001 - analysis is optional; the timings stand
                    graph = {"macs_source": f"unknown ({one_line(exc)})"}
                say({"ok": True, "event": "finished", "peak_rss_mb": peak, "baseline_rss_mb": baseline,
                     "graph": graph})
                return 0
            else:
                raise ValueError(f"unknown command {cmd!r}")
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the parent
        if os.environ.get("DECONV_EDGE_DEBUG"):
            import traceback

            traceback.print_exc()
        say({"ok": False, "error": one_line(exc)})
        return 1


def main(make_runner: Callable[[CaseSpec], Runner], argv: Optional[list] = None, usage: str = "SPEC_JSON") -> int:
    """A worker's entry point: keep the protocol stream clean, read the spec from ``argv[0]``, serve it."""
    argv = sys.argv[1:] if argv is None else argv
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # native prints go to stderr from now on
    sys.stdout = sys.stderr
    if not argv:
        proto.write(json.dumps({"ok": False, "error": f"usage: {usage}"}) + "\n")
        return 2
    return serve(CaseSpec.from_json(argv[0]), make_runner, proto, sys.stdin)
