"""Worker process of ``deconv-edge bench``: the runners of each case kind (protocol: :mod:`.protocol`).

    python -m edge_runtime.bench.worker SPEC_JSON
"""

from __future__ import annotations

import os
import sys
import time
from typing import Optional

from deconv_edge_core.registry import Registry

from .graph import onnx_graph_macs, ort_profile, tflite_graph
from .protocol import Runner, ms
from .protocol import main as protocol_main

RUNNERS: Registry = Registry("bench case kind")
#: Formats whose model computes in int8 (full-integer files; dynamic-range files quantize activations on the fly).
INT8_FORMATS = ("tflite-int8", "edgetpu", "onnx-int8", "tflite-dynamic")


def compute_precision(fmt: Optional[str]) -> str:
    """``int8`` or ``fp32``: which MAC-rate limit a model of format ``fmt`` is put against (fp16 weights are
    computed in fp32 on these CPUs)."""
    return "int8" if fmt in INT8_FORMATS else "fp32"


@RUNNERS.register("artifact")
class ArtifactRunner(Runner):
    """An artifact through :class:`~edge_runtime.inference.enhance.Enhancer` (frame path) and its backend (model call).

    The model call is timed on the backend entry point the frame path uses (``run``, or ``run_native`` for
    the 8-bit frame path) with the tensor shape it feeds; both, and the calls per frame, come from the
    backend's own call counter, never from guessing what the Enhancer does.
    """

    def prepare(self) -> None:
        super().prepare()
        from deconv_edge_core.manifest import load_manifest
        from edge_runtime.inference import enhance  # noqa: F401  (numpy, OpenCV, the backends registry)
        from edge_runtime.inference.backends import BACKENDS, edgetpu, litert, onnxruntime  # noqa: F401

        self.manifest, _ = load_manifest(self.spec.artifact)
        # Import the runtime library now, so the baseline RSS includes it and load_ms does not.
        if self.spec.backend == "onnxruntime":
            import onnxruntime  # noqa: F401
        else:
            litert.interpreter_module()

    def load(self) -> None:
        from edge_runtime.inference.config import RuntimeConfig
        from edge_runtime.inference.enhance import Enhancer

        self.enhancer = Enhancer(self.spec.artifact, RuntimeConfig(backend=self.spec.backend,
                                                                    threads=int(self.spec.threads)))
        self.backend = self.enhancer.backend

    def _model_input(self, shape: tuple):
        """The real-valued model tensor of the frame's luma, cropped/padded to ``shape``."""
        import numpy as np

        from edge_runtime.inference.color import luma

        lo, hi = self.manifest.value_range
        y = luma(self.frame) / 255.0 * (hi - lo) + lo
        n, h, w = int(shape[0]), int(shape[1]), int(shape[2])
        y = np.pad(y, ((0, max(0, h - y.shape[0])), (0, max(0, w - y.shape[1]))), mode="edge")[:h, :w]
        x = self.enhancer._model_input(y)  # luma, plus a denoiser's noise-level map
        return np.ascontiguousarray(np.broadcast_to(x[None], (n, h, w, x.shape[2])), dtype=np.float32)

    def _expected_shape(self) -> tuple:
        """The shape the first model call is timed at, before the frame path has shown what it feeds."""
        h, w = (int(v) for v in self.spec.input_hw)
        th, tw = getattr(self.enhancer, "tile", (None, None))
        c = self.manifest.input_channels
        if (th is None or th == h) and (tw is None or tw == w):
            return (1, h, w, c)
        return (int(getattr(self.enhancer, "max_batch", 1)), int(th or h), int(tw or w), c)

    def first(self) -> tuple:
        x = self._model_input(self._expected_shape())
        t0 = time.perf_counter()
        self.backend.run(x)
        first_model = ms(t0, time.perf_counter())
        stats = self.backend.stats
        stats.reset()
        t0 = time.perf_counter()
        self.enhancer(self.frame)
        first_frame = ms(t0, time.perf_counter())
        self.calls_per_frame = stats.total
        self.notes = []
        if not stats.total:
            raise RuntimeError("the frame path made no model call the backend counted")
        self.entry = stats.calls.most_common(1)[0][0]
        shape = stats.input_shapes.most_common(1)[0][0]
        self.x = self._model_input(shape)
        self.feed = self.x if self.entry == "run" else self.backend.quantize(self.x, self.manifest.input)
        self.call = getattr(self.backend, self.entry)
        if self.entry != "run":
            self.notes.append(f"frame path calls {self.entry} (the tensor's own dtype); so does the model call")
        return first_model, first_frame

    def step(self) -> tuple:
        self.call(self.feed)
        model = self.backend.stats.last_s * 1e3
        t1 = time.perf_counter()
        self.enhancer(self.frame)
        t2 = time.perf_counter()
        stages = dict(getattr(self.enhancer, "last_timing_ms", {}) or {})
        return model, ms(t1, t2), stages

    def info(self) -> dict:
        m = self.manifest
        runtime = dict(self.backend.describe())
        try:
            extra = self.enhancer.describe()
            runtime.update({k: extra[k] for k in ("tile", "halo", "batch") if k in extra})
        except Exception:  # noqa: BLE001 - descriptive only
            pass
        if self.backend.fallback:
            runtime["fallback"] = self.backend.fallback
        return {"format": m.format, "upsampler": m.upsampler, "scale": m.scale, "status": m.status,
                "precision": compute_precision(m.format), "runtime": runtime,
                "model_input_shape": list(self.x.shape), "calls_per_frame": self.calls_per_frame,
                "artifact_size_bytes": os.path.getsize(self.backend.artifact), "notes": self.notes}

    def graph(self) -> dict:
        artifact = str(self.backend.artifact)
        if self.manifest.runtime == "tflite":
            delegates = self.backend.describe().get("delegates") or ["delegate"]
            name = str(delegates[0]).replace(" (default)", "")
            return tflite_graph(artifact, tuple(self.x.shape), getattr(self.backend, "interpreter", None), name)
        shape = tuple(self.x.shape)
        if self.manifest.input.layout == "NCHW":
            shape = (shape[0], shape[3], shape[1], shape[2])
        macs = onnx_graph_macs(artifact, shape)
        out = {"macs_per_call": macs,
               "macs_source": "onnx graph (shape inference)" if macs is not None else
               "unknown (needs the onnx package)",
               "ops": dict(self.manifest.extra.get("ops") or {}), "coverage": None}
        try:
            feed = self.backend.quantize(self.x, self.manifest.input)
            if self.manifest.input.layout == "NCHW":
                feed = feed.transpose(0, 3, 1, 2).copy()
            prof = ort_profile(artifact, feed, list(getattr(self.backend, "providers", [])) or None,
                               self.spec.threads)
            out.update(prof or {})
        except Exception:  # noqa: BLE001 - profiling is optional
            pass
        return out


@RUNNERS.register("bicubic")
class BicubicRunner(Runner):
    """OpenCV bicubic: the luma plane (model call) and the BGR frame (frame path)."""

    def prepare(self) -> None:
        super().prepare()
        import cv2
        import numpy as np

        self.cv2 = cv2
        self.y = np.ascontiguousarray(self.frame[..., 1], dtype=np.float32) / 255.0
        h, w = self.spec.input_hw
        self.size = (int(w) * int(self.spec.scale), int(h) * int(self.spec.scale))

    def step(self) -> tuple:
        cv2 = self.cv2
        t0 = time.perf_counter()
        cv2.resize(self.y, self.size, interpolation=cv2.INTER_CUBIC)
        t1 = time.perf_counter()
        cv2.resize(self.frame, self.size, interpolation=cv2.INTER_CUBIC)
        t2 = time.perf_counter()
        return ms(t0, t1), ms(t1, t2), {}

    def info(self) -> dict:
        h, w = self.spec.input_hw
        return {"format": "bicubic", "scale": int(self.spec.scale),
                "runtime": {"backend": "opencv", "runtime": f"opencv {self.cv2.__version__}",
                            "threads": int(self.spec.threads)},
                "model_input_shape": [1, int(h), int(w), 1], "calls_per_frame": 1}


@RUNNERS.register("gemm")
class GemmRunner(Runner):
    """numpy float32 n x n matrix product: what this CPU's BLAS does with ``threads`` threads (MAC/s)."""

    def prepare(self) -> None:
        import numpy as np

        n = int(self.spec.gemm_n)
        rng = np.random.default_rng(0)
        self.a = rng.random((n, n), dtype=np.float32)
        self.b = rng.random((n, n), dtype=np.float32)
        self.np = np

    def step(self) -> tuple:
        t0 = time.perf_counter()
        self.np.matmul(self.a, self.b)
        return ms(t0, time.perf_counter()), None, {}

    def info(self) -> dict:
        blas = "?"
        try:
            cfg = self.np.show_config(mode="dicts")
            blas = cfg["Build Dependencies"]["blas"]["name"]
        except Exception:  # noqa: BLE001 - older numpy
            pass
        n = int(self.spec.gemm_n)
        return {"format": "gemm", "precision": "fp32",
                "runtime": {"backend": "numpy", "runtime": f"numpy {self.np.__version__} ({blas})",
                            "threads": int(self.spec.threads)},
                "model_input_shape": [n, n], "notes": [f"float32 {n}x{n} @ {n}x{n}"]}

    def graph(self) -> dict:
        n = int(self.spec.gemm_n)
        return {"macs_per_call": n ** 3, "macs_source": "n^3", "ops": {"MatMul": 1}}


@RUNNERS.register("reference")
class ReferenceRunner(Runner):
    """A packaged reference convolution (:mod:`.references`) through LiteRT with its default XNNPACK delegate."""

    def prepare(self) -> None:
        import numpy as np

        from edge_runtime.inference.backends.litert import interpreter_module

        self.np = np
        self.module = interpreter_module()
        if self.module is None:
            raise RuntimeError("no TFLite runtime installed: pip install 'deconv-edge[edge]'")

    def load(self) -> None:
        from deconv_edge_core.quiet import muted_stderr

        with muted_stderr():
            self.interpreter = self.module.Interpreter(model_path=self.spec.artifact, num_threads=int(self.spec.threads))
            self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self.index, self.shape = inp["index"], tuple(int(d) for d in inp["shape"])
        rng = self.np.random.default_rng(0)
        if self.np.issubdtype(inp["dtype"], self.np.integer):
            info = self.np.iinfo(inp["dtype"])
            self.x = rng.integers(info.min, info.max + 1, self.shape).astype(inp["dtype"])
        else:
            self.x = rng.random(self.shape, dtype=self.np.float32)

    def step(self) -> tuple:
        t0 = time.perf_counter()
        self.interpreter.set_tensor(self.index, self.x)
        self.interpreter.invoke()
        return ms(t0, time.perf_counter()), None, {}

    def info(self) -> dict:
        version = getattr(sys.modules.get(self.module.__name__.split(".")[0]), "__version__", "?")
        return {"format": "reference", "precision": self.spec.option("precision"),
                "runtime": {"backend": "litert", "runtime": f"{self.module.__name__.split('.')[0]} {version}",
                            "threads": int(self.spec.threads), "delegates": ["XNNPACK (default)"]},
                "model_input_shape": list(self.shape), "artifact_size_bytes": os.path.getsize(self.spec.artifact)}

    def graph(self) -> dict:
        return tflite_graph(self.spec.artifact, self.shape, self.interpreter, "XNNPACK")


def main(argv: Optional[list] = None) -> int:
    return protocol_main(lambda spec: RUNNERS.get(spec.kind)(spec), argv,
                         usage="python -m edge_runtime.bench.worker SPEC_JSON")


if __name__ == "__main__":
    sys.exit(main())
