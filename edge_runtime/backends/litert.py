"""LiteRT (``ai_edge_litert``, formerly TensorFlow Lite) on the CPU with XNNPACK; ``tflite_runtime`` fallback."""

from __future__ import annotations

import importlib
from typing import Optional

import numpy as np

from ..errors import UserError
from ..quiet import muted_stderr
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
        try:
            # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2 at every load.
            with muted_stderr():
                self.interpreter = mod.Interpreter(model_path=str(self.artifact), num_threads=config.threads,
                                                   experimental_delegates=self._delegates() or None)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"cannot load '{self.artifact}' as a TFLite model ({str(exc).splitlines()[0][:160]})") from None
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self._shape = tuple(self._in["shape"])

    def run(self, x: np.ndarray) -> np.ndarray:
        y = self.run_native(self.quantize(x, self.manifest.input))
        return self.dequantize(y, self.manifest.output)

    def run_native(self, q: np.ndarray) -> np.ndarray:
        self.check_input(q)
        shape = tuple(q.shape)
        if shape != self._shape:
            # Dynamic-size artifact: resize once per new frame size (cheap when it repeats).
            self.interpreter.resize_tensor_input(self._in["index"], list(shape), strict=False)
            self.interpreter.allocate_tensors()
            self._in = self.interpreter.get_input_details()[0]
            self._out = self.interpreter.get_output_details()[0]
            self._shape = shape
        self.interpreter.set_tensor(self._in["index"], q)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])

    @property
    def batch_ok(self) -> bool:
        return self.manifest.input.shape[0] is None

    def describe(self) -> dict:
        mod = self._module.__name__.split(".")[0]
        version = getattr(importlib.import_module(mod), "__version__", "?")
        return {"backend": self.name, "runtime": f"{mod} {version}", "threads": self.config.threads,
                "delegates": [type(d).__name__ for d in self._delegates()] or ["XNNPACK (default)"]}
