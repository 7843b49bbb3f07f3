"""The accelerators, on the machines that have them (``pytest -m edgetpu`` on a Coral host, ``-m jetson`` on a
Jetson or CUDA machine); elsewhere each test skips with the reason it cannot run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.inference.config import RuntimeConfig
from edge_runtime.inference.default_model import MODELS_DIR

from .conftest import synthetic_frame


def _compiled_edgetpu_model() -> Path:
    """A compiled Edge TPU artifact: ``DECONV_EDGE_EDGETPU_MODEL``, else one in the models folder whose manifest
    says ``compiled: true`` (the shipped ones are uncompiled until a host with edgetpu_compiler converts them)."""
    given = os.environ.get("DECONV_EDGE_EDGETPU_MODEL")
    if given:
        return Path(given)
    for manifest in sorted(MODELS_DIR.glob("*_edgetpu.tflite.json")):
        if (json.loads(manifest.read_text()).get("edgetpu") or {}).get("compiled"):
            return manifest.with_suffix("")
    pytest.skip("no compiled Edge TPU artifact (set DECONV_EDGE_EDGETPU_MODEL, or convert on a host with "
                "edgetpu_compiler)")


@pytest.mark.edgetpu
def test_edgetpu_runs_a_compiled_model_on_the_accelerator():
    from edge_runtime.inference.backends.edgetpu import load_error
    from edge_runtime.inference.enhance import Enhancer

    reason = load_error()
    if reason:
        pytest.skip(f"no Edge TPU here: {reason}")
    model = _compiled_edgetpu_model()
    enhancer = Enhancer(model, RuntimeConfig(backend="edgetpu"))
    assert enhancer.backend.fallback is None and enhancer.backend.name == "edgetpu"
    frame = synthetic_frame(400, 300)  # larger than the 320x240 tile: the tiler runs too
    out = enhancer(frame)
    assert out.shape == (300 * enhancer.scale, 400 * enhancer.scale, 3)
    cpu = Enhancer(model, RuntimeConfig(backend="litert"))
    # Same int8 arithmetic on the accelerator and in the CPU interpreter, up to rounding.
    assert np.abs(out.astype(int) - cpu(frame).astype(int)).mean() < 1.0


@pytest.mark.jetson
@pytest.mark.parametrize("provider", ["CUDAExecutionProvider", "TensorrtExecutionProvider"])
def test_onnx_on_the_gpu_matches_the_cpu(provider, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="needs ONNX Runtime (NVIDIA's onnxruntime-gpu on a Jetson)")
    if provider not in ort.get_available_providers():
        pytest.skip(f"{provider} is not available here (installed: {', '.join(ort.get_available_providers())})")
    from edge_runtime.inference.backends import open_backend

    model = MODELS_DIR / "fsrcnn_x2_fp32.onnx"
    gpu = open_backend(model, RuntimeConfig(backend="onnxruntime", providers=(provider,),
                                            trt_cache_dir=str(tmp_path / "trt")))
    assert gpu.providers[0] == provider  # the backend refuses a silent fallback to the CPU
    cpu = open_backend(model, RuntimeConfig(backend="onnxruntime", providers=("CPUExecutionProvider",)))
    x = np.random.default_rng(0).random((1, 48, 64, 1)).astype(np.float32)
    tolerance = 5e-3 if provider == "TensorrtExecutionProvider" else 1e-4  # TensorRT runs in fp16 here
    assert np.max(np.abs(gpu.run(x) - cpu.run(x))) <= tolerance
