"""ONNX Runtime: CPU everywhere; TensorRT → CUDA → CPU on a Jetson; OpenVINO on Intel."""

from __future__ import annotations

import importlib.util
import os
from typing import Optional

import numpy as np

from deconv_edge_core.errors import UserError

from ..tensorcheck import check_onnx
from . import Backend, register_backend

#: Preference order when the caller does not name providers.
DEFAULT_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
                          "CPUExecutionProvider")
ORT_HINT = "ONNX Runtime not installed: pip install 'deconv-edge[onnx]' (on a Jetson: NVIDIA's onnxruntime-gpu wheel)"


@register_backend("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """``onnxruntime.InferenceSession`` with an explicit provider chain that is checked after loading."""

    runtimes = ("onnx",)

    @classmethod
    def available(cls) -> Optional[str]:
        return None if importlib.util.find_spec("onnxruntime") else ORT_HINT

    def __init__(self, artifact, manifest, config):
        super().__init__(artifact, manifest, config)
        import onnxruntime as ort

        self._ort = ort
        installed = ort.get_available_providers()
        if config.providers:
            missing = [p for p in config.providers if p not in installed]
            if missing:
                raise UserError(f"ONNX Runtime here has no {', '.join(missing)} (installed: {', '.join(installed)})")
            wanted = list(config.providers)
        else:
            wanted = [p for p in DEFAULT_PROVIDER_ORDER if p in installed]
        providers = []
        for p in wanted:
            if p == "TensorrtExecutionProvider":
                cache = config.trt_cache_dir or os.path.join(os.path.dirname(os.path.abspath(artifact)), ".trt-cache")
                os.makedirs(cache, exist_ok=True)
                providers.append((p, {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                                      "trt_fp16_enable": True}))
            else:
                providers.append(p)
        opts = ort.SessionOptions()
        if config.threads:
            opts.intra_op_num_threads = int(config.threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.artifact), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception classes
            raise UserError(f"cannot load '{self.artifact}' as an ONNX model ({(str(exc).splitlines() or [type(exc).__name__])[0][:160]})") from None
        # ORT silently drops a provider that fails to initialise: say so when the user asked for it.
        active = self.session.get_providers()
        if config.providers and config.providers[0] not in active:
            raise UserError(f"ONNX Runtime fell back to {active[0]}: {config.providers[0]} did not initialise "
                            "(check CUDA/TensorRT libraries with 'deconv-edge doctor')")
        self.providers = active
        # The manifest is untrusted: compare it with the session's real tensors.
        check_onnx(self.artifact.name, manifest, self.session.get_inputs(), self.session.get_outputs())
        self._in_name = self.session.get_inputs()[0].name
        self._out_name = self.session.get_outputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.dequantize(self._run_native(self.quantize(x, self.manifest.input)), self.manifest.output)

    def _run_native(self, q: np.ndarray) -> np.ndarray:
        self.check_input(q)
        feed = q
        if self.manifest.input.layout == "NCHW":
            feed = np.ascontiguousarray(feed.transpose(0, 3, 1, 2))
        y = self.session.run([self._out_name], {self._in_name: feed})[0]
        if self.manifest.output.layout == "NCHW":
            y = y.transpose(0, 2, 3, 1)
        return y

    @property
    def batch_ok(self) -> bool:
        return self.manifest.input.shape[0] is None

    def describe(self) -> dict:
        return {"backend": self.name, "runtime": f"onnxruntime {self._ort.__version__}",
                "threads": self.config.threads, "providers": self.providers}
