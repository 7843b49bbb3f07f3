"""On-device latency benchmark: the measuring logic behind ``deconv-edge bench`` and ``benchmarks/speed``.

Every measured configuration (artifact x backend x thread count, or bicubic, GEMM, the OpenCV peer) is a
*case* that lives in its own worker process (:mod:`edge_runtime.bench_worker`, or any program speaking the
same JSON-lines protocol). One process per case gives each one a clean peak RSS, its own thread pools
(OpenCV's is process-wide) and a load time free of the others' caches. The cases of one group are loaded
one after the other, then stepped in turn, one iteration each (A B C A B C …), so drift on a busy machine
(another job starting, thermal throttling) hits all of them alike; ratios are taken against the first case.

Each iteration times the model call alone (``Backend.run`` on the tensor the frame path feeds it) and the
whole frame path (``Enhancer``: preprocess, invoke, postprocess, each reported). Timing happens inside the
worker with ``time.perf_counter``, so the protocol's pipes never count.

MACs come from walking the graph that runs, at the shape it runs: the TFLite graph through LiteRT (a second,
undelegated interpreter, so that every tensor has its real shape), the ONNX graph through ``onnx`` shape
inference (MACs are unknown where the ``onnx`` package is not installed, e.g. on a runtime-only device).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

from .errors import UserError

SCHEMA = "deconv-edge-bench/1"
DEFAULT_INPUT_HW = (240, 320)
DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5
MAX_THREADS = 256
MAX_INPUT_SIDE = 8192
#: Seconds a worker may take to load (a TensorRT engine build on a Jetson takes minutes) and per step.
LOAD_TIMEOUT_S = 1800.0
STEP_TIMEOUT_S = 600.0
#: Frame-path stages the Enhancer reports, in order.
STAGES = ("preprocess", "invoke", "postprocess")
#: Matrix size of the GEMM reference case (n x n x n MACs per call).
DEFAULT_GEMM_N = 512
REPO_ROOT = Path(__file__).resolve().parents[1]


# ---- parsing ----------------------------------------------------------------------------------------------
def parse_threads(text: str) -> tuple:
    """``"1,2,4"`` → ``(1, 2, 4)`` (order kept, duplicates dropped).

    Raises:
        UserError: empty, not an integer, or outside 1..256.
    """
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise UserError(f"bad --threads '{text}': expected a comma-separated list such as 1,2,4")
    out = []
    for item in items:
        if not re.fullmatch(r"\d+", item):
            raise UserError(f"bad --threads '{text}': '{item}' is not a positive integer")
        n = int(item)
        if not 1 <= n <= MAX_THREADS:
            raise UserError(f"bad --threads '{text}': thread counts must be 1..{MAX_THREADS}, got {n}")
        if n not in out:
            out.append(n)
    return tuple(out)


def parse_input_size(text: str) -> tuple:
    """``"240x320"`` → ``(240, 320)``: height x width of the low-resolution frame.

    Raises:
        UserError: not ``HxW`` or a side outside 1..8192.
    """
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text or ""))
    if not m:
        raise UserError(f"bad --input-size '{text}': expected HxW (height x width), e.g. 240x320")
    h, w = int(m.group(1)), int(m.group(2))
    if not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
        raise UserError(f"bad --input-size '{text}': each side must be 1..{MAX_INPUT_SIDE}")
    return h, w


def usable_cores() -> int:
    """CPUs this process may run on (the affinity mask inside containers, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> tuple:
    """One thread, and every usable core."""
    return tuple(dict.fromkeys((1, usable_cores())))


# ---- configuration ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    """What ``deconv-edge bench`` measures.

    Attributes:
        artifacts: artifact (or manifest) paths; the first is the reference for ratios.
        backends: backend keys (``auto`` = the one each manifest calls for).
        threads: thread counts; each is one interleaved group.
        input_hw: low-resolution frame (height, width) for the frame path (fixed-shape artifacts tile it).
        runs: measured iterations per case.
        warmup: unmeasured iterations per case before the measured ones.
        bicubic: add a plain-bicubic case to every group (the floor any model must beat).
    """

    artifacts: tuple
    backends: tuple = ("auto",)
    threads: tuple = (1,)
    input_hw: tuple = DEFAULT_INPUT_HW
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    bicubic: bool = False

    def __post_init__(self):
        if not self.artifacts:
            raise UserError("no artifact given: deconv-edge bench ARTIFACT [ARTIFACT ...]")
        if not self.threads or any(not 1 <= int(t) <= MAX_THREADS for t in self.threads):
            raise UserError(f"thread counts must be 1..{MAX_THREADS}, got {list(self.threads)}")
        if int(self.runs) < 1:
            raise UserError(f"--runs must be >= 1, got {self.runs}")
        if int(self.warmup) < 0:
            raise UserError(f"--warmup must be >= 0, got {self.warmup}")
        h, w = self.input_hw
        if not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
            raise UserError(f"input size {h}x{w} is out of range (1..{MAX_INPUT_SIDE} per side)")

    def to_dict(self) -> dict:
        return {"artifacts": [str(a) for a in self.artifacts], "backends": list(self.backends),
                "threads": list(self.threads), "input_hw": list(self.input_hw), "runs": self.runs,
                "warmup": self.warmup, "bicubic": self.bicubic}


@dataclass(frozen=True)
class CaseSpec:
    """One case as its worker receives it (JSON on the command line).

    Attributes:
        kind: worker's runner key (``artifact``, ``bicubic``, ``gemm``; ``peer`` in ``benchmarks/``).
        label: name shown in tables.
        threads: CPU threads for the runtime and OpenCV.
        input_hw: low-resolution frame (height, width).
        artifact: model path (``artifact`` and ``peer`` kinds).
        backend: backend key (``artifact`` kind).
        scale: upscaling factor (bicubic and peer; artifacts read theirs from the manifest).
        gemm_n: matrix size of the ``gemm`` kind.
        options: extra ``(name, value)`` pairs for other runners (e.g. the peer's algorithm name).
    """

    kind: str
    label: str
    threads: int = 1
    input_hw: tuple = DEFAULT_INPUT_HW
    artifact: Optional[str] = None
    backend: str = "auto"
    scale: int = 2
    gemm_n: int = DEFAULT_GEMM_N
    options: tuple = ()

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["input_hw"] = list(self.input_hw)
        d["options"] = [list(o) for o in self.options]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> CaseSpec:
        d = json.loads(text)
        d["input_hw"] = tuple(d["input_hw"])
        d["options"] = tuple(tuple(o) for o in d.get("options", ()))
        return cls(**d)

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)


# ---- statistics -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyStats:
    """Steady-state latency of one series, in milliseconds; ``fps`` is ``1000 / p50_ms``."""

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    mean_ms: float
    std_ms: float
    fps: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> Optional[LatencyStats]:
        """Summarise ``samples_ms``; ``None`` when empty. Percentiles interpolate linearly."""
        import numpy as np

        a = np.asarray([s for s in samples_ms if s is not None], dtype=np.float64)
        if a.size == 0:
            return None
        p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
        return cls(n=int(a.size), p50_ms=p50, p90_ms=p90, p99_ms=p99, min_ms=float(a.min()),
                   mean_ms=float(a.mean()), std_ms=float(a.std()), fps=1000.0 / p50 if p50 > 0 else math.inf)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Ratios:
    """Median latency of a case divided by that of its group's first case (> 1 = slower)."""

    model_p50: Optional[float]
    frame_p50: Optional[float]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- what a worker reports --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseInfo:
    """Static facts the worker learned while loading."""

    format: Optional[str] = None
    upsampler: Optional[str] = None
    scale: Optional[int] = None
    status: Optional[str] = None
    runtime: dict = field(default_factory=dict)
    model_input_shape: Optional[tuple] = None
    calls_per_frame: Optional[int] = None
    artifact_size_bytes: Optional[int] = None
    notes: tuple = ()

    @classmethod
    def from_dict(cls, d: dict) -> CaseInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in (d or {}).items() if k in known}
        if d.get("model_input_shape") is not None:
            d["model_input_shape"] = tuple(d["model_input_shape"])
        d["notes"] = tuple(d.get("notes", ()))
        return cls(**d)


@dataclass(frozen=True)
class LoadInfo:
    """Load and first-call times (ms) and what was loaded."""

    load_ms: Optional[float]
    first_inference_ms: Optional[float]
    first_frame_ms: Optional[float]
    info: CaseInfo


@dataclass(frozen=True)
class GraphInfo:
    """MACs per model call, executed op types and delegate/provider coverage, when the runtime can tell."""

    macs_per_call: Optional[int] = None
    macs_source: Optional[str] = None
    ops: dict = field(default_factory=dict)
    coverage: Optional[dict] = None

    @classmethod
    def from_dict(cls, d: dict) -> GraphInfo:
        d = d or {}
        return cls(macs_per_call=d.get("macs_per_call"), macs_source=d.get("macs_source"), ops=dict(d.get("ops") or {}),
                   coverage=d.get("coverage"))


@dataclass(frozen=True)
class FinishInfo:
    """What the worker reports after the last iteration."""

    peak_rss_mb: Optional[float]
    baseline_rss_mb: Optional[float]
    graph: GraphInfo


@dataclass
class Samples:
    """Per-iteration timings (ms), accumulated over steps; ``None`` entries mean "not measured"."""

    model_ms: list = field(default_factory=list)
    frame_ms: list = field(default_factory=list)
    stages_ms: dict = field(default_factory=dict)

    def extend(self, other: Samples) -> None:
        self.model_ms.extend(other.model_ms)
        self.frame_ms.extend(other.frame_ms)
        for k, v in other.stages_ms.items():
            self.stages_ms.setdefault(k, []).extend(v)

    @classmethod
    def from_dict(cls, d: dict) -> Samples:
        return cls(list(d.get("model_ms") or []), list(d.get("frame_ms") or []),
                   {k: list(v) for k, v in (d.get("stages_ms") or {}).items()})


class CaseError(RuntimeError):
    """A case that could not load or failed while running (reported in its row; the others go on)."""


class Case(Protocol):
    """What the interleaving scheduler drives; :class:`SubprocessCase` is the real one."""

    spec: CaseSpec

    def start(self) -> LoadInfo: ...

    def step(self, n: int = 1) -> Samples: ...

    def finish(self) -> FinishInfo: ...

    def close(self) -> None: ...


# ---- the worker process -----------------------------------------------------------------------------------
def worker_argv() -> list:
    """Command line of this package's worker (same interpreter)."""
    return [sys.executable, "-m", "edge_runtime.bench_worker"]


def worker_env(threads: int, extra: Optional[dict] = None) -> dict:
    """Environment of a worker: BLAS/OpenMP pools sized to ``threads``, this checkout importable."""
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
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


class SubprocessCase:
    """A case run by a worker process speaking the JSON-lines protocol (see :mod:`edge_runtime.bench_worker`).

    Args:
        spec: the case.
        argv: worker command (default: ``python -m edge_runtime.bench_worker``); the spec's JSON is appended.
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
            self.proc = subprocess.Popen([*self.argv, self.spec.to_json()], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0,
                                         env=worker_env(self.spec.threads, self.env), cwd=str(REPO_ROOT))
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


# ---- results ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseResult:
    """Everything measured about one case (one row of the table; one object in the JSON ``results``)."""

    label: str
    kind: str
    group: str
    artifact: Optional[str]
    format: Optional[str]
    upsampler: Optional[str]
    scale: Optional[int]
    status: Optional[str]
    backend: Optional[str]
    runtime: dict
    threads: int
    frame_hw: tuple
    model_input_shape: Optional[tuple]
    artifact_size_bytes: Optional[int]
    load_ms: Optional[float]
    first_inference_ms: Optional[float]
    first_frame_ms: Optional[float]
    model: Optional[LatencyStats]
    frame: Optional[LatencyStats]
    stages: dict
    calls_per_frame: Optional[int]
    macs_per_call: Optional[int]
    macs_per_frame: Optional[int]
    macs_source: Optional[str]
    model_gmacs_per_s: Optional[float]
    ops: dict
    coverage: Optional[dict]
    peak_rss_mb: Optional[float]
    baseline_rss_mb: Optional[float]
    ratio_vs_first: Optional[Ratios]
    notes: tuple
    error: Optional[str]
    samples_ms: dict

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("model", "frame", "ratio_vs_first"):
            d[key] = d[key].to_dict() if d[key] is not None else None
        d["stages"] = {k: (v.to_dict() if v is not None else None) for k, v in self.stages.items()}
        d["frame_hw"] = list(self.frame_hw)
        d["model_input_shape"] = list(self.model_input_shape) if self.model_input_shape is not None else None
        d["notes"] = list(self.notes)
        # Microsecond resolution is all a timer on a busy machine can claim; keeps the files small.
        d["samples_ms"] = {k: [None if v is None else round(v, 3) for v in vals] for k, vals in self.samples_ms.items()}
        return d


def build_result(spec: CaseSpec, group: str, load: Optional[LoadInfo], samples: Samples,
                 finish: Optional[FinishInfo], error: Optional[str]) -> CaseResult:
    """Combine what a worker reported into one :class:`CaseResult` (ratios are filled in later)."""
    info = load.info if load else CaseInfo()
    graph = finish.graph if finish else GraphInfo()
    model = LatencyStats.from_samples(samples.model_ms)
    frame = LatencyStats.from_samples(samples.frame_ms)
    stages = {k: LatencyStats.from_samples(v) for k, v in samples.stages_ms.items()}
    macs_frame = None
    if graph.macs_per_call is not None and info.calls_per_frame is not None:
        macs_frame = int(graph.macs_per_call) * int(info.calls_per_frame)
    gmacs = None
    if graph.macs_per_call and model is not None and model.p50_ms > 0:
        gmacs = graph.macs_per_call / (model.p50_ms * 1e-3) / 1e9
    return CaseResult(
        label=spec.label, kind=spec.kind, group=group, artifact=spec.artifact, format=info.format,
        upsampler=info.upsampler, scale=info.scale if info.scale is not None else spec.scale, status=info.status,
        backend=info.runtime.get("backend") if info.runtime else (None if spec.kind != "artifact" else spec.backend),
        runtime=dict(info.runtime), threads=spec.threads, frame_hw=tuple(spec.input_hw),
        model_input_shape=info.model_input_shape, artifact_size_bytes=info.artifact_size_bytes,
        load_ms=load.load_ms if load else None, first_inference_ms=load.first_inference_ms if load else None,
        first_frame_ms=load.first_frame_ms if load else None, model=model, frame=frame, stages=stages,
        calls_per_frame=info.calls_per_frame, macs_per_call=graph.macs_per_call, macs_per_frame=macs_frame,
        macs_source=graph.macs_source, model_gmacs_per_s=gmacs, ops=dict(graph.ops), coverage=graph.coverage,
        peak_rss_mb=finish.peak_rss_mb if finish else None, baseline_rss_mb=finish.baseline_rss_mb if finish else None,
        ratio_vs_first=None, notes=tuple(info.notes), error=error,
        samples_ms={"model": list(samples.model_ms), "frame": list(samples.frame_ms)})


def with_ratios(results: Sequence[CaseResult]) -> list:
    """Fill ``ratio_vs_first``: each result's median latency over its group's first result's."""

    def ratio(a: Optional[LatencyStats], b: Optional[LatencyStats]) -> Optional[float]:
        return a.p50_ms / b.p50_ms if a is not None and b is not None and b.p50_ms > 0 else None

    firsts: dict = {}
    for r in results:
        firsts.setdefault(r.group, r)
    return [dataclasses.replace(r, ratio_vs_first=Ratios(ratio(r.model, firsts[r.group].model),
                                                          ratio(r.frame, firsts[r.group].frame)))
            for r in results]


# ---- the scheduler ----------------------------------------------------------------------------------------
class ProgressSink(Protocol):
    """Where progress goes (a rich bar, plain lines, or nothing)."""

    def begin(self, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def note(self, message: str) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    """Progress sink that shows nothing."""

    def begin(self, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def end(self) -> None:
        pass


def run_interleaved(cases: Sequence[Case], runs: int, warmup: int, group: str = "",
                    progress: Optional[ProgressSink] = None) -> list:
    """Load every case, then step them in turn (A B A B …): ``warmup`` unmeasured rounds, ``runs`` measured.

    A case that fails is reported with its error and left out of the later rounds; the others go on.
    Returns one :class:`CaseResult` per case, in order, without ratios (see :func:`with_ratios`).
    """
    progress = progress or NoProgress()
    n = len(cases)
    loads: list = [None] * n
    finishes: list = [None] * n
    errors: list = [None] * n
    samples = [Samples() for _ in cases]
    try:
        for i, case in enumerate(cases):
            progress.note(f"loading {case.spec.label} ({group})" if group else f"loading {case.spec.label}")
            try:
                loads[i] = case.start()
            except CaseError as exc:
                errors[i] = str(exc)
                case.close()
            progress.advance()
        for round_ in range(warmup + runs):
            for i, case in enumerate(cases):
                if errors[i] is None:
                    try:
                        got = case.step(1)
                        if round_ >= warmup:
                            samples[i].extend(got)
                    except CaseError as exc:
                        errors[i] = str(exc)
                        case.close()
                progress.advance()
        for i, case in enumerate(cases):
            if errors[i] is None:
                try:
                    finishes[i] = case.finish()
                except CaseError as exc:
                    errors[i] = str(exc)
            progress.advance()
    finally:
        for case in cases:
            case.close()
    return [build_result(c.spec, group, loads[i], samples[i], finishes[i], errors[i]) for i, c in enumerate(cases)]


def group_steps(n_cases: int, runs: int, warmup: int) -> int:
    """Progress units of one group: loads, rounds and finishes."""
    return n_cases * (2 + runs + warmup)


# ---- device fingerprint -----------------------------------------------------------------------------------
#: ARM CPU part numbers (``CPU part`` in /proc/cpuinfo) of common edge boards.
_ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
              "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
              "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE",
              "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd4b": "Cortex-A78C",
              "0x004": "NVIDIA Carmel", "0xc07": "Cortex-A7", "0xc0f": "Cortex-A15", "0xb76": "ARM1176"}
#: Python distributions whose versions go into the fingerprint (looked up, never imported).
_DISTRIBUTIONS = ("numpy", "opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
                  "opencv-contrib-python", "ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu",
                  "onnxruntime-openvino")


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def _cpu_model(cpuinfo: str) -> Optional[str]:
    for key in ("model name", "Model Name", "cpu model", "Processor"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.M)
        if m:
            return m.group(1).strip()
    parts = sorted(set(re.findall(r"^CPU part\s*:\s*(\S+)", cpuinfo, re.M)))
    if parts:
        return " + ".join(_ARM_PARTS.get(p.lower(), f"ARM part {p}") for p in parts)
    return platform.processor() or None


def _os_name() -> str:
    text = _read("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', text, re.M)
    base = m.group(1) if m else platform.system()
    return f"{base} ({platform.system()} {platform.release()}, {platform.machine()})"


def _throttling() -> tuple:
    """(description, throttled?) from the sources a board offers; (None, False) when none does."""
    import shutil

    if shutil.which("vcgencmd"):  # Raspberry Pi firmware: bit 0 under-voltage, 1 capped, 2 throttled (now)
        try:
            out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=3).stdout
            m = re.search(r"throttled=(0x[0-9a-fA-F]+)", out)
            if m:
                value = int(m.group(1), 16)
                return f"vcgencmd get_throttled={m.group(1)}", bool(value & 0x7)
        except (OSError, subprocess.SubprocessError):
            pass
    counts = []
    for cpu in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/thermal_throttle/core_throttle_count")):
        text = _read(str(cpu))
        if text and text.isdigit():
            counts.append(int(text))
    if counts:
        return f"core_throttle_count={sum(counts)} since boot", sum(counts) > 0
    return None, False


def _max_temp_c() -> Optional[float]:
    temps = []
    for zone in Path("/sys/class/thermal").glob("thermal_zone*/temp"):
        text = _read(str(zone))
        if text and text.lstrip("-").isdigit():
            temps.append(int(text) / 1000.0)
    return max(temps) if temps else None


@dataclass(frozen=True)
class DeviceInfo:
    """Where the numbers were taken."""

    cpu_model: Optional[str]
    cores_logical: int
    cores_usable: int
    cpu_max_mhz: Optional[float]
    governor: Optional[str]
    board_model: Optional[str]
    os: str
    python: str
    versions: dict
    throttling: Optional[str]
    throttled: bool
    max_temp_c: Optional[float]
    load_avg_1m: Optional[float]
    hostname: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def warnings(self) -> list:
        """Reasons the numbers may not be representative."""
        out = []
        if self.governor is None:
            out.append("CPU frequency governor unknown (no cpufreq here, e.g. a VM or container): clock scaling "
                       "may change the numbers")
        elif self.governor != "performance":
            out.append(f"CPU governor is '{self.governor}', not 'performance': clocks ramp up and down during the "
                       "run (sudo cpupower frequency-set -g performance)")
        if self.throttled:
            out.append(f"the CPU reports throttling ({self.throttling}): cool or power the board better")
        if self.load_avg_1m is not None and self.load_avg_1m > 0.5 * self.cores_usable:
            out.append(f"the machine is busy (load average {self.load_avg_1m:.1f} on {self.cores_usable} cores): "
                       "expect noisy numbers; ratios between interleaved cases stay comparable")
        return out

    def short(self) -> str:
        """One line: board or CPU, cores, OS."""
        what = self.board_model or self.cpu_model or "unknown CPU"
        if self.board_model and self.cpu_model:
            what = f"{self.board_model} ({self.cpu_model})"
        return f"{what}, {self.cores_usable}/{self.cores_logical} cores, {self.os}"


def device_fingerprint() -> DeviceInfo:
    """CPU, cores, governor, board, OS and library versions of this machine (reads files; imports nothing)."""
    from importlib import metadata

    cpuinfo = _read("/proc/cpuinfo") or ""
    govs = sorted({g for g in (_read(str(p)) for p in
                               Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")) if g})
    max_khz = [int(t) for t in (_read(str(p)) for p in
                                Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq"))
               if t and t.isdigit()]
    board = _read("/proc/device-tree/model")
    if not board:
        m = re.search(r"^Model\s*:\s*(.+)$", cpuinfo, re.M)
        board = m.group(1).strip() if m else None
    if not board:
        vendor, product = _read("/sys/class/dmi/id/sys_vendor"), _read("/sys/class/dmi/id/product_name")
        board = " ".join(p for p in (vendor, product) if p) or None
    versions = {}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    throttling, throttled = _throttling()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return DeviceInfo(
        cpu_model=_cpu_model(cpuinfo), cores_logical=os.cpu_count() or 1, cores_usable=usable_cores(),
        cpu_max_mhz=max(max_khz) / 1000.0 if max_khz else None, governor=",".join(govs) if govs else None,
        board_model=board, os=_os_name(), python=platform.python_version(), versions=versions,
        throttling=throttling, throttled=throttled, max_temp_c=_max_temp_c(), load_avg_1m=load,
        hostname=platform.node())


# ---- the whole benchmark ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchReport:
    """One ``deconv-edge bench`` run (the JSON file is :meth:`to_dict`)."""

    created: str
    command: str
    config: BenchConfig
    device: DeviceInfo
    results: tuple
    warnings: tuple
    wall_s: float

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "created": self.created, "command": self.command, "config": self.config.to_dict(),
                "device": self.device.to_dict(), "warnings": list(self.warnings), "wall_s": self.wall_s,
                "results": [r.to_dict() for r in self.results]}


def resolve_cases(config: BenchConfig) -> list:
    """Check every artifact and backend up front and return the case specs, grouped by thread count.

    Raises:
        UserError: a missing/invalid/tampered artifact, an unknown backend, one that is not installed here, or
            one that cannot read an artifact's file type.
    """
    from .backends import BACKENDS, default_backend_for, edgetpu, litert, onnxruntime  # noqa: F401 (registry)
    from .manifest import load_manifest, verify_artifact

    for key in config.backends:
        if key != "auto":
            reason = BACKENDS.get(key).available()  # unknown → one line listing the valid ones
            if reason:
                raise UserError(f"backend '{key}' is not usable here: {reason}")
    pairs = []
    for given in config.artifacts:
        manifest, artifact = load_manifest(given)
        verify_artifact(manifest, artifact)
        usable = []
        for key in config.backends:
            resolved = default_backend_for(manifest) if key == "auto" else key
            cls = BACKENDS.get(resolved)
            if manifest.runtime not in cls.runtimes:
                continue
            if key == "auto" and cls.available():
                if resolved == "edgetpu":  # as open_backend: an Edge TPU artifact falls back to the CPU
                    resolved = "litert"
                else:
                    raise UserError(f"'{artifact.name}' needs backend '{resolved}': {cls.available()}")
            if resolved not in usable:
                usable.append(resolved)
        if not usable:
            raise UserError(f"none of the backends {', '.join(config.backends)} can run '{artifact.name}' "
                            f"(a {manifest.runtime} artifact)")
        for key in usable:
            pairs.append((artifact, manifest, key, len(usable) > 1))
    groups = []
    for threads in config.threads:
        specs = []
        for artifact, manifest, key, several in pairs:
            label = case_label(artifact, [a for a, _, _, _ in pairs])
            if several:
                label = f"{label} [{key}]"
            specs.append(CaseSpec(kind="artifact", label=label, threads=int(threads), input_hw=tuple(config.input_hw),
                                  artifact=str(artifact), backend=key, scale=manifest.scale))
        if config.bicubic:
            specs.append(CaseSpec(kind="bicubic", label=f"bicubic x{pairs[0][1].scale}", threads=int(threads),
                                  input_hw=tuple(config.input_hw), scale=pairs[0][1].scale))
        groups.append((f"{threads} thread{'s' if threads > 1 else ''}", specs))
    return groups


def case_label(artifact: Path, all_artifacts: Sequence[Path]) -> str:
    """The file name, with as many parent folders as it takes to tell it from the other artifacts'."""
    others = {Path(a).resolve() for a in all_artifacts} - {Path(artifact).resolve()}
    parts = Path(artifact).resolve().parts
    for n in range(1, len(parts) + 1):
        tail = parts[-n:]
        if all(Path(o).parts[-n:] != tail for o in others):
            return "/".join(tail)
    return str(artifact)


def run_bench(config: BenchConfig, progress: Optional[ProgressSink] = None, command: str = "",
              case_factory: Callable[[CaseSpec], Case] = SubprocessCase) -> BenchReport:
    """Measure every case of ``config`` (see the module docstring).

    Raises:
        UserError: bad input found before anything runs (see :func:`resolve_cases`).
    """
    groups = resolve_cases(config)
    device = device_fingerprint()
    progress = progress or NoProgress()
    progress.begin(sum(group_steps(len(specs), config.runs, config.warmup) for _, specs in groups))
    t0 = time.perf_counter()
    results = []
    try:
        for name, specs in groups:
            results.extend(run_interleaved([case_factory(s) for s in specs], config.runs, config.warmup, name, progress))
    finally:
        progress.end()
    results = with_ratios(results)
    warnings = list(device.warnings()) + [f"{r.label} ({r.group}): {r.error}" for r in results if r.error]
    return BenchReport(created=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=command,
                       config=config, device=device, results=tuple(results), warnings=tuple(warnings),
                       wall_s=time.perf_counter() - t0)


# ---- output -----------------------------------------------------------------------------------------------
def csv_rows(results: Sequence[CaseResult]) -> list:
    """One flat dict per result, for CSV."""
    rows = []
    for r in results:
        row = {"label": r.label, "group": r.group, "kind": r.kind, "artifact": r.artifact, "format": r.format,
               "upsampler": r.upsampler, "scale": r.scale, "status": r.status, "backend": r.backend,
               "threads": r.threads, "frame_h": r.frame_hw[0], "frame_w": r.frame_hw[1],
               "model_input_shape": "x".join(map(str, r.model_input_shape)) if r.model_input_shape else None,
               "artifact_size_bytes": r.artifact_size_bytes, "load_ms": r.load_ms,
               "first_inference_ms": r.first_inference_ms, "first_frame_ms": r.first_frame_ms}
        for prefix, stats in (("model", r.model), ("frame", r.frame), *((s, r.stages.get(s)) for s in STAGES)):
            keys = ("p50_ms", "p90_ms", "p99_ms", "min_ms", "mean_ms", "std_ms") + (("fps",) if prefix in ("model", "frame") else ())
            for key in keys:
                row[f"{prefix}_{key}"] = getattr(stats, key) if stats is not None else None
        row.update({"calls_per_frame": r.calls_per_frame, "macs_per_call": r.macs_per_call,
                    "macs_per_frame": r.macs_per_frame, "macs_source": r.macs_source,
                    "model_gmacs_per_s": r.model_gmacs_per_s, "peak_rss_mb": r.peak_rss_mb,
                    "baseline_rss_mb": r.baseline_rss_mb,
                    "ratio_model_p50": r.ratio_vs_first.model_p50 if r.ratio_vs_first else None,
                    "ratio_frame_p50": r.ratio_vs_first.frame_p50 if r.ratio_vs_first else None,
                    "coverage": (r.coverage or {}).get("summary"), "error": r.error})
        rows.append(row)
    return rows


def write_csv(path: str | Path, results: Sequence[CaseResult]) -> None:
    import csv
    import io

    from .fsutil import write_text_atomic

    rows = csv_rows(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["label"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    write_text_atomic(path, buf.getvalue())


def write_json(path: str | Path, report: BenchReport) -> None:
    from .fsutil import write_json_atomic

    write_json_atomic(path, report.to_dict())


def fmt(value, digits: int = 2, unit: str = "") -> str:
    """A number for a table cell; ``-`` when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def fmt_macs(macs: Optional[int]) -> str:
    if macs is None:
        return "-"
    return f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.1f} M"


#: Terminal/Markdown columns: (header, cell function).
TABLE_COLUMNS: tuple = (
    ("case", lambda r: r.label),
    ("backend", lambda r: r.backend or "-"),
    ("thr", lambda r: str(r.threads)),
    ("load ms", lambda r: fmt(r.load_ms, 1)),
    ("1st ms", lambda r: fmt(r.first_inference_ms, 1)),
    ("model p50", lambda r: fmt(r.model.p50_ms if r.model else None)),
    ("p90", lambda r: fmt(r.model.p90_ms if r.model else None)),
    ("p99", lambda r: fmt(r.model.p99_ms if r.model else None)),
    ("frame p50", lambda r: fmt(r.frame.p50_ms if r.frame else None)),
    ("pre/inv/post", lambda r: "/".join(fmt(r.stages[s].p50_ms if r.stages.get(s) else None, 1) for s in STAGES)
     if r.stages else "-"),
    ("FPS", lambda r: fmt(r.frame.fps if r.frame else None, 1)),
    ("x first", lambda r: fmt(r.ratio_vs_first.frame_p50 if r.ratio_vs_first else None, 2)),
    ("RSS MB", lambda r: fmt(r.peak_rss_mb, 0)),
    ("size KB", lambda r: fmt(r.artifact_size_bytes / 1024.0 if r.artifact_size_bytes else None, 1)),
    ("MAC/frame", lambda r: fmt_macs(r.macs_per_frame)),
    ("coverage", lambda r: (r.coverage or {}).get("summary") or "-"),
)


#: The terminal leaves coverage out of the table (too wide) and lists it below.
TERMINAL_COLUMNS: tuple = tuple(c for c in TABLE_COLUMNS if c[0] != "coverage")


def table_rows(results: Sequence[CaseResult], columns: Sequence = TABLE_COLUMNS) -> list:
    """Header and cells of the summary table (errors replace the numbers)."""
    rows = [[h for h, _ in columns]]
    for r in results:
        if r.error:
            rows.append([r.label, r.backend or "-", str(r.threads), f"ERROR: {r.error}"] + [""] * (len(columns) - 4))
        else:
            rows.append([fn(r) for _, fn in columns])
    return rows


def plain_table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned text table (for terminals without ``rich``)."""
    widths = [max(len(str(row[i])) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    # Names left-aligned, numbers right-aligned.
    lines = ["  ".join(str(c).ljust(w) if i < 2 or not any(ch.isdigit() for ch in str(c)) else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    def esc(c) -> str:
        return str(c).replace("|", "\\|")

    out = ["| " + " | ".join(esc(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(out)


def markdown_report(report: BenchReport) -> str:
    """The run as Markdown: device, settings, the table, warnings."""
    d = report.device
    cfg = report.config
    lines = [f"# deconv-edge bench ({report.created})", "",
             f"- device: {d.short()}; governor {d.governor or 'unknown'}; Python {d.python}; "
             + ", ".join(f"{k} {v}" for k, v in d.versions.items()),
             f"- frame {cfg.input_hw[0]}x{cfg.input_hw[1]} (HxW, low resolution), {cfg.runs} runs after "
             f"{cfg.warmup} warm-up, cases interleaved per thread count; 'x first' = frame p50 / the first case's",
             f"- command: `{report.command}`" if report.command else "", ""]
    lines.append(markdown_table(table_rows(report.results)))
    if report.warnings:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in report.warnings]
    return "\n".join(ln for ln in lines if ln is not None) + "\n"


def write_markdown(path: str | Path, report: BenchReport) -> None:
    from .fsutil import write_text_atomic

    write_text_atomic(path, markdown_report(report))
