"""Inference backends (one file each), filled into ``BACKENDS`` by :func:`register_backend`.

A backend takes and returns *real* values: float32 NHWC luma in the manifest's value range. It quantizes
and dequantizes with the manifest's parameters, so callers never see int8/uint8.
"""

from __future__ import annotations

import abc
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.manifest import Manifest, TensorSpec, load_manifest, verify_artifact
from deconv_edge_core.registry import Registry

from ..config import RuntimeConfig

BACKENDS: Registry = Registry("backend")


def register_backend(key: str):
    """Class decorator: register a :class:`Backend` subclass under ``key``."""
    return BACKENDS.register_class(key, "name")


class CallStats:
    """Model calls a backend made, counted and timed by the backend itself (what ``bench`` reads).

    Both entry points count: ``run`` (real values) and ``run_native`` (the tensor's own dtype, which the
    Enhancer's 8-bit frame path uses). Each outer call counts once, whichever entry the backend uses inside.

    Attributes:
        calls: calls per entry point (``run``, ``run_native``).
        input_shapes: how often each input shape was fed.
        seconds: wall time spent inside the calls.
        last_s: wall time of the latest call.
        last_entry: entry point of the latest call.
    """

    ENTRIES = ("run", "run_native")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Start counting from zero."""
        self.calls: Counter = Counter()
        self.input_shapes: Counter = Counter()
        self.seconds = 0.0
        self.last_s = 0.0
        self.last_entry: Optional[str] = None

    @property
    def total(self) -> int:
        """Calls through either entry point."""
        return sum(self.calls.values())

    def record(self, entry: str, shape: tuple, seconds: float) -> None:
        self.calls[entry] += 1
        self.input_shapes[tuple(int(d) for d in shape)] += 1
        self.seconds += seconds
        self.last_s, self.last_entry = seconds, entry


class Backend(abc.ABC):
    """Runs one artifact.

    Subclasses implement :meth:`_run` (and :meth:`_run_native` when they can take the raw tensor); the public
    :meth:`run` and :meth:`run_native` count and time every call in :attr:`stats`. A subclass that overrides
    the public methods would escape the counting, so defining them is refused.

    Args:
        artifact: path of the model file.
        manifest: its manifest.
        config: runtime options.

    Attributes:
        stats: the :class:`CallStats` of this backend's calls.
        fallback: why this backend runs instead of the one the manifest asked for (``None`` = it is that one).
    """

    name = "?"
    #: file types this backend reads (``Manifest.runtime``)
    runtimes: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for entry in CallStats.ENTRIES:
            if entry in vars(cls):
                raise TypeError(f"{cls.__name__} defines {entry}(): implement _{entry}() instead, so that the "
                                "call counter and timer see every call")

    def __init__(self, artifact: Path, manifest: Manifest, config: RuntimeConfig):
        self.artifact, self.manifest, self.config = Path(artifact), manifest, config
        self.stats = CallStats()
        self.fallback: Optional[str] = None

    @classmethod
    def available(cls) -> Optional[str]:
        """``None`` if usable here, else a one-line reason with the install hint."""
        return None

    def run(self, x: np.ndarray) -> np.ndarray:
        """Infer on ``x``: float32 (N, H, W, 1) real values → float32 (N, H·s, W·s, 1) real values.

        Fixed-shape artifacts need ``(H, W)`` equal to the manifest's input size (the Enhancer tiles).
        """
        t0 = time.perf_counter()
        y = self._run(x)
        self.stats.record("run", x.shape, time.perf_counter() - t0)
        return y

    def run_native(self, q: np.ndarray) -> np.ndarray:
        """Infer on ``q`` already in the input tensor's dtype (N, H, W, 1); returns the raw output tensor.

        The Enhancer's 8-bit path uses it to skip the float round trip (``run`` = dequantize ∘ run_native ∘
        quantize).
        """
        t0 = time.perf_counter()
        y = self._run_native(q)
        self.stats.record("run_native", q.shape, time.perf_counter() - t0)
        return y

    @abc.abstractmethod
    def _run(self, x: np.ndarray) -> np.ndarray:
        """:meth:`run` without the counting."""

    def _run_native(self, q: np.ndarray) -> np.ndarray:
        """:meth:`run_native` without the counting; the default goes through :meth:`_run`."""
        x = self.dequantize(q, self.manifest.input)
        return self.quantize(self._run(x), self.manifest.output)

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
        c = self.manifest.input_channels
        if x.ndim != 4 or x.shape[-1] != c:
            raise ValueError(f"expected (N, H, W, {c}) {'luma' if c == 1 else 'luma and noise level'}, got {x.shape}")
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

    ``config.threads`` ``None`` means every usable core (:func:`edge_runtime.machine.usable_cores`). Verifies the
    artifact's sha256 against the manifest first. Under ``auto``, an Edge TPU artifact on a
    machine without the Edge TPU runtime falls back to the CPU interpreter with a warning.

    Raises:
        UserError: missing/invalid manifest, hash mismatch, unknown or unavailable backend, a backend that
            cannot read this file type.
    """
    from . import edgetpu, litert, onnxruntime  # noqa: F401  (fill the registry)

    config = config or RuntimeConfig()
    if config.threads is None:
        # Fast by default: every core this process may run on (the runtimes' own default is one thread).
        from ...machine import usable_cores

        config = dataclasses.replace(config, threads=usable_cores())

    manifest, artifact = load_manifest(artifact_or_manifest)
    if config.verify_sha256:
        verify_artifact(manifest, artifact)
    key = config.backend
    fallback = None
    if key == "auto":
        key = default_backend_for(manifest)
        reason = BACKENDS.get(key).available()
        if reason and key == "edgetpu":
            # One plain line (not warnings.warn, which echoes a source line): the run goes on.
            print(f"warning: {reason}; running the Edge TPU artifact on the CPU instead", file=sys.stderr)
            fallback = f"Edge TPU runtime not found, CPU fallback ({reason})"
            key = "litert"
    cls = BACKENDS.get(key)
    if manifest.runtime not in cls.runtimes:
        raise UserError(f"backend '{key}' cannot run a {manifest.runtime} artifact ('{artifact.name}'); "
                        f"use one of: {', '.join(k for k in BACKENDS if manifest.runtime in BACKENDS.get(k).runtimes)}")
    reason = cls.available()
    if reason:
        raise UserError(reason)
    backend = cls(artifact, manifest, config)
    backend.fallback = fallback
    return backend


__all__ = ["BACKENDS", "Backend", "CallStats", "register_backend", "open_backend", "default_backend_for"]
