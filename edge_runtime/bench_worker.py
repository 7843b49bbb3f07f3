"""Worker process of ``deconv-edge bench``: runs one case, timed in-process, answering on a JSON-lines pipe.

Protocol (any program that speaks it can be a case, e.g. ``benchmarks/peer_worker.py`` in another venv):

- ``argv[1]`` is the :class:`~edge_runtime.bench.CaseSpec` as JSON. The worker imports what it needs, notes
  its RSS (the baseline), loads the case (timed: ``load_ms``), makes the first model call and the first frame
  (timed: ``first_inference_ms``, ``first_frame_ms``) and prints
  ``{"ok": true, "event": "ready", "load_ms": …, "first_inference_ms": …, "first_frame_ms": …, "info": {…}}``.
- ``{"cmd": "step", "n": N}`` on stdin: N iterations, each one model call then one frame; answer
  ``{"ok": true, "event": "samples", "model_ms": […], "frame_ms": […], "stages_ms": {"preprocess": […], …}}``.
- ``{"cmd": "finish"}``: answer ``{"ok": true, "event": "finished", "peak_rss_mb": …, "baseline_rss_mb": …,
  "graph": {"macs_per_call", "macs_source", "ops", "coverage"}}`` (peak RSS is read *before* the graph is
  analysed) and exit. End of stdin also exits.
- Any failure: ``{"ok": false, "error": "one line"}`` and exit status 1.

Native libraries sometimes print to stdout, which would corrupt the stream: file descriptor 1 is pointed at
stderr and the protocol writes to a private duplicate of the original stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Optional

from .bench import CaseSpec
from .errors import UserError
from .registry import Registry

RUNNERS: Registry = Registry("bench case kind")


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


def _ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1e3


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


# ---- graph analysis: MACs, ops, coverage ------------------------------------------------------------------
def tflite_conv_macs(op: str, shapes_in: list, shape_out: Optional[list]) -> int:
    """MACs of one TFLite op from its tensors' shapes (0 for ops without multiply-accumulates)."""
    if op == "CONV_2D" and shape_out and len(shapes_in) >= 2:
        return _prod(shape_out) * _prod(shapes_in[1][1:])          # filter [O, kh, kw, I]
    if op == "DEPTHWISE_CONV_2D" and shape_out and len(shapes_in) >= 2:
        return _prod(shape_out) * _prod(shapes_in[1][1:3])         # filter [1, kh, kw, O]
    if op == "TRANSPOSE_CONV" and len(shapes_in) >= 3:
        return _prod(shapes_in[2]) * _prod(shapes_in[1][:3])       # each input pixel scatters [O, kh, kw]
    if op == "FULLY_CONNECTED" and shape_out and len(shapes_in) >= 2:
        return _prod(shape_out) * int(shapes_in[1][-1])            # weights [O, I]
    return 0


def tflite_coverage(ops_details: list, delegate_name: str) -> Optional[dict]:
    """Which ops of a delegated interpreter run inside a delegate.

    ``_get_ops_details()`` lists the original nodes followed by one ``DELEGATE`` node per partition. A
    partition's nodes are those reached walking back from its outputs until its inputs.
    """
    is_delegate = [("DELEGATE" in str(o.get("op_name", "")).upper()) for o in ops_details]
    originals = [o for o, d in zip(ops_details, is_delegate) if not d]
    partitions = [o for o, d in zip(ops_details, is_delegate) if d]
    by_index = {o["index"]: o for o in originals}
    producer = {t: o["index"] for o in originals for t in o["outputs"]}
    covered: set = set()
    for part in partitions:
        boundary = set(int(t) for t in part["inputs"])
        stack = [int(t) for t in part["outputs"]]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node in covered:
                continue
            covered.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"] if t >= 0 and int(t) not in boundary)
    left = Counter(o["op_name"] for o in originals if o["index"] not in covered)
    total = len(originals)
    if not partitions:
        summary = f"no delegate: {total} ops on built-in kernels"
    else:
        summary = f"{delegate_name} {len(covered)}/{total} ops" + (
            " (not: " + ", ".join(f"{k} x{v}" for k, v in sorted(left.items())) + ")" if left else "")
    return {"summary": summary, "delegate": delegate_name if partitions else None, "partitions": len(partitions),
            "ops_total": total, "ops_delegated": len(covered), "not_delegated": dict(left)}


def tflite_graph(artifact: str, input_shape: tuple, delegated=None, delegate_name: str = "delegate") -> dict:
    """MACs and op counts of a TFLite model at ``input_shape``; coverage from the ``delegated`` interpreter.

    A delegate leaves the shapes of the tensors it owns stale, so MACs are read from a second interpreter
    without delegates, resized and invoked once (dynamic shapes such as TRANSPOSE_CONV's resolve at invoke).
    """
    import numpy as np

    from .backends.litert import interpreter_module

    mod = interpreter_module()
    kwargs = {}
    resolver = getattr(mod, "OpResolverType", None)
    if resolver is not None and hasattr(resolver, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = mod.Interpreter(model_path=artifact, num_threads=1, **kwargs)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(input_shape), strict=False)
    it.allocate_tensors()
    it.set_tensor(inp["index"], np.zeros(input_shape, dtype=inp["dtype"]))
    it.invoke()
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in it.get_tensor_details()}
    macs = 0
    ops: Counter = Counter()
    for op in it._get_ops_details():
        ops[op["op_name"]] += 1
        ins = [shapes.get(int(t), []) for t in op["inputs"] if t >= 0]
        out = shapes.get(int(op["outputs"][0])) if len(op["outputs"]) else None
        macs += tflite_conv_macs(op["op_name"], ins, out)
    coverage = None
    if delegated is not None:
        try:
            coverage = tflite_coverage(delegated._get_ops_details(), delegate_name)
        except Exception:  # noqa: BLE001 - a private API; coverage is optional
            coverage = None
    return {"macs_per_call": int(macs), "macs_source": "tflite graph (LiteRT, no delegate)", "ops": dict(ops),
            "coverage": coverage}


def onnx_graph_macs(artifact: str, input_shape: tuple) -> Optional[int]:
    """MACs of an ONNX model at ``input_shape`` (in the graph's own layout) via ``onnx`` shape inference.

    Returns ``None`` when ``onnx`` is not installed or a convolution's shapes stay unknown.
    """
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(artifact)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, input_shape):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dd = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dd]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)

    def known(name: str) -> Optional[list]:
        s = shapes.get(name)
        return s if s and all(v is not None for v in s) else None

    macs = 0
    for node in model.graph.node:
        op = node.op_type
        weight = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "ConvTranspose": 1}.get(op)
        if weight is not None:
            w = known(node.input[weight]) if len(node.input) > weight else None
            ref = known(node.input[0]) if op == "ConvTranspose" else known(node.output[0])
            if w is None or ref is None:
                return None
            macs += _prod(ref) * _prod(w[1:])   # Conv: out x (I/g, kh, kw); ConvTranspose: in x (O/g, kh, kw)
        elif op in ("MatMul", "Gemm", "MatMulInteger"):
            a, out = known(node.input[0]), known(node.output[0])
            if a is None or out is None:
                return None
            macs += _prod(out) * int(a[-1])
    return int(macs)


def ort_profile(artifact: str, x, providers: list, threads: Optional[int]) -> Optional[dict]:
    """Op types that ran and which provider ran them, from one profiled ONNX Runtime call."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        if threads:
            opts.intra_op_num_threads = int(threads)
        sess = ort.InferenceSession(artifact, sess_options=opts, providers=providers)
        sess.run(None, {sess.get_inputs()[0].name: x})
        with open(sess.end_profiling()) as fh:
            events = json.load(fh)
    ops: Counter = Counter()
    by_provider: Counter = Counter()
    for ev in events:
        if ev.get("cat") == "Node" and str(ev.get("name", "")).endswith("_kernel_time"):
            args = ev.get("args", {})
            ops[args.get("op_name", "?")] += 1
            by_provider[args.get("provider", "?")] += 1
    total = sum(by_provider.values())
    summary = ", ".join(f"{p.replace('ExecutionProvider', '')} {n}/{total} nodes" for p, n in by_provider.most_common())
    return {"ops": dict(ops), "coverage": {"summary": summary, "providers": dict(by_provider), "nodes": total}}


# ---- runners ----------------------------------------------------------------------------------------------
class Runner:
    """One case inside the worker. ``prepare`` (imports, inputs) is not timed; ``load`` is."""

    def __init__(self, spec: CaseSpec):
        self.spec = spec

    def prepare(self) -> None:
        import cv2

        # OpenCV's pool is process-wide: the frame path gets the same thread budget as the model.
        cv2.setNumThreads(int(self.spec.threads))
        h, w = self.spec.input_hw
        self.frame = synthetic_frame(int(h), int(w))

    def load(self) -> None:
        pass

    def first(self) -> tuple:
        """(first_inference_ms, first_frame_ms)."""
        m, f, _ = self.step()
        return m, f

    def step(self) -> tuple:
        """(model_ms, frame_ms, stages_ms) of one iteration."""
        raise NotImplementedError

    def info(self) -> dict:
        return {}

    def graph(self) -> dict:
        return {}


@RUNNERS.register("artifact")
class ArtifactRunner(Runner):
    """An artifact through :class:`~edge_runtime.enhance.Enhancer` (frame path) and its backend (model call)."""

    def prepare(self) -> None:
        super().prepare()
        from . import enhance  # noqa: F401  (numpy, OpenCV, the backends registry)
        from .backends import BACKENDS, edgetpu, litert, onnxruntime  # noqa: F401
        from .manifest import load_manifest

        self.manifest, _ = load_manifest(self.spec.artifact)
        # Import the runtime library now, so the baseline RSS includes it and load_ms does not.
        if self.spec.backend == "onnxruntime":
            import onnxruntime  # noqa: F401
        else:
            litert.interpreter_module()

    def load(self) -> None:
        from .config import RuntimeConfig
        from .enhance import Enhancer

        self.enhancer = Enhancer(self.spec.artifact, RuntimeConfig(backend=self.spec.backend,
                                                                    threads=int(self.spec.threads)))
        self.backend = self.enhancer.backend

    def _model_input(self, shape: tuple):
        """The model tensor the frame path feeds: the frame's luma, cropped/tiled to ``shape``."""
        import numpy as np

        from .color import luma

        lo, hi = self.manifest.value_range
        y = luma(self.frame) / 255.0 * (hi - lo) + lo
        n, h, w = int(shape[0]), int(shape[1]), int(shape[2])
        y = np.pad(y, ((0, max(0, h - y.shape[0])), (0, max(0, w - y.shape[1]))), mode="edge")[:h, :w]
        return np.ascontiguousarray(np.broadcast_to(y[None, :, :, None], (n, h, w, 1)), dtype=np.float32)

    def _expected_shape(self) -> tuple:
        h, w = (int(v) for v in self.spec.input_hw)
        th, tw = getattr(self.enhancer, "tile", (None, None))
        if (th is None or th == h) and (tw is None or tw == w):
            return (1, h, w, 1)
        return (int(getattr(self.enhancer, "max_batch", 1)), int(th or h), int(tw or w), 1)

    def first(self) -> tuple:
        self.x = self._model_input(self._expected_shape())
        t0 = time.perf_counter()
        self.backend.run(self.x)
        first_model = _ms(t0, time.perf_counter())
        shapes = []
        run = self.backend.run

        def counting(x):
            shapes.append(tuple(x.shape))
            return run(x)

        self.backend.run = counting  # instance attribute shadows the method for one frame
        try:
            t0 = time.perf_counter()
            self.enhancer(self.frame)
            first_frame = _ms(t0, time.perf_counter())
        finally:
            del self.backend.run
        self.calls_per_frame = len(shapes)
        self.notes = []
        if shapes and shapes[0] != tuple(self.x.shape):
            self.notes.append(f"frame path feeds {shapes[0]}, not {tuple(self.x.shape)}; model call uses that")
            self.x = self._model_input(shapes[0])
        return first_model, first_frame

    def step(self) -> tuple:
        t0 = time.perf_counter()
        self.backend.run(self.x)
        t1 = time.perf_counter()
        self.enhancer(self.frame)
        t2 = time.perf_counter()
        stages = dict(getattr(self.enhancer, "last_timing_ms", {}) or {})
        return _ms(t0, t1), _ms(t1, t2), stages

    def info(self) -> dict:
        m = self.manifest
        runtime = dict(self.backend.describe())
        try:
            extra = self.enhancer.describe()
            runtime.update({k: extra[k] for k in ("tile", "halo", "batch") if k in extra})
        except Exception:  # noqa: BLE001 - descriptive only
            pass
        return {"format": m.format, "upsampler": m.upsampler, "scale": m.scale, "status": m.status,
                "runtime": runtime, "model_input_shape": list(self.x.shape), "calls_per_frame": self.calls_per_frame,
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
        return _ms(t0, t1), _ms(t1, t2), {}

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
        return _ms(t0, time.perf_counter()), None, {}

    def info(self) -> dict:
        blas = "?"
        try:
            cfg = self.np.show_config(mode="dicts")
            blas = cfg["Build Dependencies"]["blas"]["name"]
        except Exception:  # noqa: BLE001 - older numpy
            pass
        n = int(self.spec.gemm_n)
        return {"format": "gemm", "runtime": {"backend": "numpy", "runtime": f"numpy {self.np.__version__} ({blas})",
                                              "threads": int(self.spec.threads)},
                "model_input_shape": [n, n], "notes": [f"float32 {n}x{n} @ {n}x{n}"]}

    def graph(self) -> dict:
        n = int(self.spec.gemm_n)
        return {"macs_per_call": n ** 3, "macs_source": "n^3", "ops": {"MatMul": 1}}


# ---- main loop --------------------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def serve(spec: CaseSpec, out, commands) -> int:
    """Run the protocol for ``spec``: write answers to ``out``, read commands from ``commands``."""

    def say(payload: dict) -> None:
        out.write(json.dumps(payload) + "\n")
        out.flush()

    try:
        runner = RUNNERS.get(spec.kind)(spec)
        runner.prepare()
        baseline = peak_rss_mb()
        t0 = time.perf_counter()
        runner.load()
        load_ms = _ms(t0, time.perf_counter())
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
                    graph = {"macs_source": f"unknown ({_one_line(exc)})"}
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
        say({"ok": False, "error": _one_line(exc)})
        return 1


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # native prints go to stderr from now on
    sys.stdout = sys.stderr
    if not argv:
        proto.write(json.dumps({"ok": False, "error": "usage: python -m edge_runtime.bench_worker SPEC_JSON"}) + "\n")
        return 2
    return serve(CaseSpec.from_json(argv[0]), proto, sys.stdin)


if __name__ == "__main__":
    sys.exit(main())
