"""The parent's side of the worker protocol: one case, one process, JSON lines over its pipes.

The worker's side is :mod:`edge_runtime.bench.protocol`; the protocol itself is described there.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Protocol, Sequence

from .config import CaseSpec
from .results import CaseInfo, FinishInfo, GraphInfo, LoadInfo, Samples

#: Seconds a worker may take to load (a TensorRT engine build on a Jetson takes minutes) and per step.
LOAD_TIMEOUT_S = 1800.0
STEP_TIMEOUT_S = 600.0
#: The folder holding ``edge_runtime`` (a checkout, or site-packages): put on the workers' PYTHONPATH.
IMPORT_ROOT = Path(__file__).resolve().parents[2]


class CaseError(RuntimeError):
    """A case that could not load or failed while running (reported in its row; the others go on)."""


class Case(Protocol):
    """What the interleaving scheduler drives; :class:`SubprocessCase` is the real one."""

    spec: CaseSpec

    def start(self) -> LoadInfo: ...

    def step(self, n: int = 1) -> Samples: ...

    def finish(self) -> FinishInfo: ...

    def close(self) -> None: ...


def worker_argv() -> list:
    """Command line of this package's worker (same interpreter)."""
    return [sys.executable, "-m", "edge_runtime.bench.worker"]


def worker_env(threads: int, extra: Optional[dict] = None) -> dict:
    """Environment of a worker: BLAS/OpenMP pools sized to ``threads``, this package importable."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    # Interleaved cases share the cores: a pool that busy-waits after its call (OpenBLAS spins ~2^28 cycles by
    # default, OpenMP's ACTIVE policy) steals the next case's second thread, and 2-thread rows came out at
    # 1-thread speed. Idle workers must sleep.
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(IMPORT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


class SubprocessCase:
    """A case run by a worker process speaking the JSON-lines protocol (see :mod:`edge_runtime.bench.worker`).

    Args:
        spec: the case.
        argv: worker command (default: ``python -m edge_runtime.bench.worker``); the spec's JSON is appended.
        env: extra environment variables.
    """

    def __init__(self, spec: CaseSpec, argv: Optional[Sequence[str]] = None, env: Optional[dict] = None):
        self.spec = spec
        self.argv = list(argv or worker_argv())
        self.env = env
        self.proc: Optional[subprocess.Popen] = None
        self._stderr = None
        self._buf = b""
        self._timeout_s = LOAD_TIMEOUT_S

    # -- protocol ------------------------------------------------------------------------------------------
    def _send(self, payload: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(payload) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, AttributeError):
            raise CaseError(self._died("the worker exited")) from None

    def _readline(self, deadline: float) -> Optional[bytes]:
        """One line from the worker (``None`` at end of file). Own buffering over an unbuffered pipe, so that
        ``select`` never waits on data already read."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise CaseError(f"the worker did not answer within {self._timeout_s:.0f} s")
            if os.name == "posix":  # select on pipes is POSIX-only; elsewhere the read blocks
                ready, _, _ = select.select([fd], [], [], min(left, 1.0))
                if not ready:
                    continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _receive(self, timeout_s: float) -> dict:
        self._timeout_s = timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._readline(deadline)
            if line is None:
                raise CaseError(self._died("the worker exited"))
            line = line.strip()
            if not line.startswith(b"{"):
                continue  # stray output of a native library; the protocol lines are JSON objects
            msg = json.loads(line)
            if not msg.get("ok", False):
                raise CaseError(str(msg.get("error") or "the worker failed"))
            return msg

    def _died(self, what: str) -> str:
        code = self.proc.poll() if self.proc else None
        tail = ""
        if self._stderr is not None:
            try:
                self._stderr.seek(0)
                lines = [ln.strip() for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
                tail = lines[-1][:200] if lines else ""
            except OSError:
                pass
        return f"{what} (exit status {code})" + (f": {tail}" if tail else "")

    # -- Case ----------------------------------------------------------------------------------------------
    def start(self) -> LoadInfo:
        self._stderr = tempfile.TemporaryFile()
        try:
            # The caller's working folder: a relative path in the spec means what it meant to the user.
            self.proc = subprocess.Popen([*self.argv, self.spec.to_json()], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0,
                                         env=worker_env(self.spec.threads, self.env))
        except OSError as exc:
            raise CaseError(f"cannot start the worker {self.argv[0]}: {exc}") from None
        msg = self._receive(LOAD_TIMEOUT_S)
        return LoadInfo(msg.get("load_ms"), msg.get("first_inference_ms"), msg.get("first_frame_ms"),
                        CaseInfo.from_dict(msg.get("info") or {}))

    def step(self, n: int = 1) -> Samples:
        self._send({"cmd": "step", "n": int(n)})
        return Samples.from_dict(self._receive(STEP_TIMEOUT_S * max(1, n)))

    def finish(self) -> FinishInfo:
        self._send({"cmd": "finish"})
        msg = self._receive(STEP_TIMEOUT_S)
        self.close()
        return FinishInfo(msg.get("peak_rss_mb"), msg.get("baseline_rss_mb"), GraphInfo.from_dict(msg.get("graph")))

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                try:
                    pipe.close()
                except (OSError, AttributeError):
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
