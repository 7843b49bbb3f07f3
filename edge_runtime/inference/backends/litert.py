"""LiteRT (``ai_edge_litert``, formerly TensorFlow Lite) on the CPU with XNNPACK; ``tflite_runtime`` fallback."""

from __future__ import annotations

import importlib
from collections import OrderedDict
from typing import Optional

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.quiet import muted_stderr

from ..tensorcheck import check_litert
from . import Backend, register_backend

_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def interpreter_module():
    """The first importable TFLite interpreter module, or ``None``."""
    for name in _MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


#: Interpreters kept, one per input shape, for a dynamic-size artifact. A colour denoiser alternates a frame-size
#: luma plane with half-size chroma planes, and resizing one interpreter makes XNNPACK prepare the graph again
#: at every switch, which cost more than the inference (a 640x480 frame: 118 ms against 32 ms luma only).
MAX_SHAPES = 3


@register_backend("litert")
class LiteRTBackend(Backend):
    """CPU interpreter. XNNPACK is the default delegate for float and int8 models in LiteRT."""

    runtimes = ("tflite",)

    @classmethod
    def available(cls) -> Optional[str]:
        if interpreter_module() is None:
            return "no TFLite runtime installed: pip install 'deconv-edge[edge]' (or '[legacy]' for tflite-runtime)"
        return None

    def _delegates(self) -> list:
        return []

    def __init__(self, artifact, manifest, config):
        super().__init__(artifact, manifest, config)
        mod = interpreter_module()
        self._module = mod
        self.interpreter = self._load()
        # The manifest is untrusted: compare it with the real tensors before allocating anything.
        check_litert(self.artifact.name, manifest, self.interpreter.get_input_details(),
                     self.interpreter.get_output_details())
        try:
            with muted_stderr():
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"cannot load '{self.artifact}' as a TFLite model ({(str(exc).splitlines() or [type(exc).__name__])[0][:160]})") from None
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self._shape = tuple(self._in["shape"])
        self._by_shape: OrderedDict = OrderedDict()  # shape -> (interpreter, input, output), newest last

    def _load(self):
        try:
            # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2 at every load.
            with muted_stderr():
                return self._module.Interpreter(model_path=str(self.artifact), num_threads=self.config.threads,
                                                experimental_delegates=self._delegates() or None)
        except (ValueError, RuntimeError) as exc:
            # tflite-runtime 2.14 (the legacy stack) raises a bare ValueError() for a file that is not a model.
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise UserError(f"cannot load '{self.artifact}' as a TFLite model ({first[:160]})") from None

    def _use_shape(self, shape: tuple) -> None:
        """Make the interpreter for ``shape`` current: a kept one, else a new one (the oldest is reused
        once :data:`MAX_SHAPES` are kept)."""
        self._by_shape[self._shape] = (self.interpreter, self._in, self._out)
        self._by_shape.move_to_end(self._shape)
        kept = self._by_shape.pop(shape, None)
        if kept is None:
            if len(self._by_shape) >= MAX_SHAPES:
                _, (interp, _, _) = self._by_shape.popitem(last=False)
            else:
                interp = self._load()
            interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(shape), strict=False)
            interp.allocate_tensors()
            kept = (interp, interp.get_input_details()[0], interp.get_output_details()[0])
        self.interpreter, self._in, self._out = kept
        self._shape = shape

    def _run(self, x: np.ndarray) -> np.ndarray:
        y = self._run_native(self.quantize(x, self.manifest.input))
        return self.dequantize(y, self.manifest.output)

    def _run_native(self, q: np.ndarray) -> np.ndarray:
        self.check_input(q)
        shape = tuple(q.shape)
        if shape != self._shape:
            self._use_shape(shape)  # dynamic-size artifact: one interpreter per recent input shape
        self.interpreter.set_tensor(self._in["index"], q)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])

    @property
    def batch_ok(self) -> bool:
        return self.manifest.input.shape[0] is None

    def delegation(self) -> Optional[dict]:
        """What the interpreter really runs: delegate partitions and op coverage (``None`` if unreadable)."""
        from ...bench.graph import tflite_coverage

        try:
            ops = self.interpreter._get_ops_details()
        except Exception:  # noqa: BLE001 - a private API: older or newer runtimes may lack it
            return None
        name = type(self._delegates()[0]).__name__ if self._delegates() else "XNNPACK"
        return tflite_coverage(ops, name)

    def describe(self) -> dict:
        mod = self._module.__name__.split(".")[0]
        version = getattr(importlib.import_module(mod), "__version__", "?")
        cov = self.delegation()
        delegates = [type(d).__name__ for d in self._delegates()]
        if not delegates and (cov is None or cov["partitions"]):
            delegates = ["XNNPACK (default)"]
        out = {"backend": self.name, "runtime": f"{mod} {version}", "threads": self.config.threads,
               "delegates": delegates, "kernels": cov["summary"] if cov else "unknown"}
        if cov is not None and not cov["partitions"]:
            # tflite-runtime 2.14 (the last build, the legacy stack) links XNNPACK but applies it to float
            # models only: int8 runs on the reference kernels, about 4x slower than LiteRT's XNNPACK.
            out["note"] = (f"{mod} {version} applied no delegate to this {self.manifest.format} model"
                           + ("; LiteRT ('deconv-edge[edge]') runs it with XNNPACK" if mod == "tflite_runtime"
                              else ""))
        return out
