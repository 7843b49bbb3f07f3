"""Inference backends (one file each), filled into ``BACKENDS`` by :func:`register_backend`.

A backend takes and returns *real* values: float32 NHWC luma in the manifest's value range. It quantizes
and dequantizes with the manifest's parameters, so callers never see int8/uint8.
"""

from __future__ import annotations

import abc
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import RuntimeConfig
from ..errors import UserError
from ..manifest import Manifest, TensorSpec, load_manifest, verify_artifact
from ..registry import Registry

BACKENDS: Registry = Registry("backend")


def register_backend(key: str):
    """Class decorator: register a :class:`Backend` subclass under ``key``."""
    return BACKENDS.register_class(key, "name")


class Backend(abc.ABC):
    """Runs one artifact.

    Args:
        artifact: path of the model file.
        manifest: its manifest.
        config: runtime options.
    """

    name = "?"
    #: file types this backend reads (``Manifest.runtime``)
    runtimes: tuple = ()

    def __init__(self, artifact: Path, manifest: Manifest, config: RuntimeConfig):
        self.artifact, self.manifest, self.config = Path(artifact), manifest, config

    @classmethod
    def available(cls) -> Optional[str]:
        """``None`` if usable here, else a one-line reason with the install hint."""
        return None

    @abc.abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """Infer on ``x``: float32 (N, H, W, 1) real values → float32 (N, H·s, W·s, 1) real values.

        Fixed-shape artifacts need ``(H, W)`` equal to the manifest's input size (the Enhancer tiles).
        """

    def run_native(self, q: np.ndarray) -> np.ndarray:
        """Infer on ``q`` already in the input tensor's dtype (N, H, W, 1); returns the raw output tensor.

        The Enhancer's 8-bit path uses it to skip the float round trip (``run`` = dequantize ∘ run_native ∘
        quantize). Backends that cannot do this keep the default, which falls back to ``run``.
        """
        x = self.dequantize(q, self.manifest.input)
        return self.quantize(self.run(x), self.manifest.output)

    def describe(self) -> dict:
        """What runs: backend, runtime version, threads, delegates/providers."""
        return {"backend": self.name, "threads": self.config.threads}

    @property
    def batch_ok(self) -> bool:
        """Whether ``run`` accepts N > 1 in one call."""
        return False

    # -- shared helpers ------------------------------------------------------------------------------
    @staticmethod
    def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
        """Real values → the tensor's dtype (affine quantization when the manifest says so)."""
        dtype = np.dtype(spec.dtype)
        if spec.quantization is None:
            return np.ascontiguousarray(x, dtype=dtype)
        q = np.round(x / spec.quantization.scale) + spec.quantization.zero_point
        info = np.iinfo(dtype)
        return np.clip(q, info.min, info.max).astype(dtype)

    @staticmethod
    def dequantize(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
        if spec.quantization is None:
            return y.astype(np.float32, copy=False)
        return ((y.astype(np.float32) - spec.quantization.zero_point) * spec.quantization.scale).astype(np.float32)

    def check_input(self, x: np.ndarray) -> None:
        if x.ndim != 4 or x.shape[-1] != 1:
            raise ValueError(f"expected (N, H, W, 1) luma, got {x.shape}")
        h, w = self.manifest.input.hw
        if (h is not None and x.shape[1] != h) or (w is not None and x.shape[2] != w):
            raise ValueError(f"{self.artifact.name} takes {h}x{w} inputs, got {x.shape[1]}x{x.shape[2]}")


def default_backend_for(manifest: Manifest) -> str:
    """The backend an artifact is made for, from its manifest."""
    if manifest.format == "edgetpu":
        return "edgetpu"
    return "onnxruntime" if manifest.runtime == "onnx" else "litert"


def open_backend(artifact_or_manifest: str | Path, config: Optional[RuntimeConfig] = None) -> Backend:
    """Load an artifact with the backend its manifest calls for (or ``config.backend``).

    Verifies the artifact's sha256 against the manifest first. Under ``auto``, an Edge TPU artifact on a
    machine without the Edge TPU runtime falls back to the CPU interpreter with a warning.

    Raises:
        UserError: missing/invalid manifest, hash mismatch, unknown or unavailable backend, a backend that
            cannot read this file type.
    """
    from . import edgetpu, litert, onnxruntime  # noqa: F401  (fill the registry)

    config = config or RuntimeConfig()

    manifest, artifact = load_manifest(artifact_or_manifest)
    if config.verify_sha256:
        verify_artifact(manifest, artifact)
    key = config.backend
    if key == "auto":
        key = default_backend_for(manifest)
        reason = BACKENDS.get(key).available()
        if reason and key == "edgetpu":
            # One plain line (not warnings.warn, which echoes a source line): the run goes on.
            print(f"warning: {reason}; running the Edge TPU artifact on the CPU instead", file=sys.stderr)
            key = "litert"
    cls = BACKENDS.get(key)
    if manifest.runtime not in cls.runtimes:
        raise UserError(f"backend '{key}' cannot run a {manifest.runtime} artifact ('{artifact.name}'); "
                        f"use one of: {', '.join(k for k in BACKENDS if manifest.runtime in BACKENDS.get(k).runtimes)}")
    reason = cls.available()
    if reason:
        raise UserError(reason)
    return cls(artifact, manifest, config)


__all__ = ["BACKENDS", "Backend", "register_backend", "open_backend", "default_backend_for"]
