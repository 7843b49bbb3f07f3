"""Runtime configuration (frozen: built once from the CLI or by the caller)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run an artifact.

    Attributes:
        backend: a key of ``BACKENDS`` or ``auto`` (picked from the manifest).
        threads: CPU threads for the interpreter (``None`` = every core this process may use, from
            ``os.sched_getaffinity``).
        providers: ONNX Runtime execution providers in order of preference (empty = the default chain
            TensorRT → CUDA → OpenVINO → CPU, filtered to what is installed).
        trt_cache_dir: where TensorRT engines are cached (building one takes minutes on a Jetson).
        verify_sha256: refuse an artifact whose hash differs from its manifest.
    """

    backend: str = "auto"
    threads: Optional[int] = None
    providers: tuple = ()
    trt_cache_dir: Optional[str] = None
    verify_sha256: bool = True
