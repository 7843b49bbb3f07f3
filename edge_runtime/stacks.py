"""What each device stack really runs, and the advice ``doctor`` gives for it (Jetson, legacy, Python 3.8).

Kept apart from :mod:`edge_runtime.doctor` so the facts about stacks live in one place: which file and runtime a
Jetson should use, which runtimes a Python has wheels for, and whether the CPU interpreter applied XNNPACK.
"""

from __future__ import annotations

import sys
from typing import Optional

#: The Jetson recommendation (doctor and README say the same).
JETSON_ADVICE = (
    "on a Jetson use the fp32 ONNX file (e.g. fsrcnn_x2_fp32.onnx) with NVIDIA's onnxruntime-gpu: TensorRT "
    "builds it in fp16 (cached beside the model), falling back to CUDA; not the int8 ONNX, whose QDQ "
    "ConvTranspose TensorRT's int8 path does not fully support (NVIDIA/TensorRT#1519, #1694), and not "
    ".tflite, which runs on the Arm cores only")


def runtime_wheels_hint(version: Optional[tuple] = None) -> str:
    """The install line for a runtime this Python has wheels for.

    ai-edge-litert publishes no wheels for Python 3.8 (JetPack 5's Python): there, ONNX Runtime or the last
    tflite-runtime is the choice.
    """
    version = tuple(version or sys.version_info[:2])
    if version < (3, 9):
        return ("pip install 'deconv-edge[onnx]' (or '[legacy]' for tflite-runtime; ai-edge-litert has no "
                "Python 3.8 wheels)")
    return "pip install 'deconv-edge[edge]' (LiteRT) or 'deconv-edge[onnx]'"


def cpu_kernels(model) -> tuple[str, bool]:
    """Load ``model`` on its default backend and say what really runs: ``(text, problem)``.

    ``problem`` is true when a TFLite model gets no delegate at all (tflite-runtime 2.14 and int8: the
    reference kernels, several times slower than XNNPACK).
    """
    from deconv_edge_core.errors import UserError

    from .inference.backends import open_backend
    from .inference.config import RuntimeConfig

    try:
        backend = open_backend(model, RuntimeConfig())
        desc = backend.describe()
    except (UserError, RuntimeError, ValueError, OSError) as exc:
        return f"cannot load {getattr(model, 'name', model)}: {(str(exc).splitlines() or [type(exc).__name__])[0][:120]}", False
    name = getattr(model, "name", str(model))
    runtime = desc.get("runtime", desc.get("backend", "?"))
    if "providers" in desc:
        return f"{name} on {runtime}: {', '.join(desc['providers'])}", False
    kernels = desc.get("kernels", "unknown")
    return f"{name} on {runtime}: {kernels}", kernels.startswith("no delegate")


__all__ = ["JETSON_ADVICE", "runtime_wheels_hint", "cpu_kernels"]
