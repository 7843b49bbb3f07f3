"""What a benchmark reports: latency statistics, what each worker said, and one :class:`CaseResult` per case."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .config import CaseSpec

#: Precisions a case computes in; each has its own MAC-rate limit (see :func:`with_limits`).
PRECISIONS = ("int8", "fp32")


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


@dataclass(frozen=True)
class CaseInfo:
    """Static facts the worker learned while loading.

    Attributes:
        precision: what the model computes in (``int8`` or ``fp32``), which picks its MAC-rate limit.
        calls_per_frame: model calls one frame took, through either backend entry point (``run`` or
            ``run_native``), as the backend's own call counter saw them.
    """

    format: Optional[str] = None
    upsampler: Optional[str] = None
    scale: Optional[int] = None
    status: Optional[str] = None
    precision: Optional[str] = None
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
        return cls(macs_per_call=d.get("macs_per_call"), macs_source=d.get("macs_source"),
                   ops=dict(d.get("ops") or {}), coverage=d.get("coverage"))


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


@dataclass(frozen=True)
class CaseResult:
    """Everything measured about one case (one row of the table; one object in the JSON ``results``).

    ``limit_gmacs_per_s`` is the fastest MAC rate a reference case of the same precision reached in the same
    group (``None`` without reference cases); ``fraction_of_limit`` is this case's model-call rate over it.
    """

    label: str
    kind: str
    group: str
    artifact: Optional[str]
    format: Optional[str]
    upsampler: Optional[str]
    scale: Optional[int]
    status: Optional[str]
    precision: Optional[str]
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
    limit_gmacs_per_s: Optional[float]
    limit_case: Optional[str]
    fraction_of_limit: Optional[float]
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

    @property
    def is_reference(self) -> bool:
        """A MAC-rate reference (GEMM or reference convolution), not a model."""
        return self.kind in ("gemm", "reference")

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
    """Combine what a worker reported into one :class:`CaseResult` (ratios and limits are filled in later)."""
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
        precision=info.precision,
        backend=info.runtime.get("backend") if info.runtime else (None if spec.kind != "artifact" else spec.backend),
        runtime=dict(info.runtime), threads=spec.threads, frame_hw=tuple(spec.input_hw),
        model_input_shape=info.model_input_shape, artifact_size_bytes=info.artifact_size_bytes,
        load_ms=load.load_ms if load else None, first_inference_ms=load.first_inference_ms if load else None,
        first_frame_ms=load.first_frame_ms if load else None, model=model, frame=frame, stages=stages,
        calls_per_frame=info.calls_per_frame, macs_per_call=graph.macs_per_call, macs_per_frame=macs_frame,
        macs_source=graph.macs_source, model_gmacs_per_s=gmacs, limit_gmacs_per_s=None, limit_case=None,
        fraction_of_limit=None, ops=dict(graph.ops), coverage=graph.coverage,
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


def with_limits(results: Sequence[CaseResult]) -> list:
    """Fill the MAC-rate limit of every model: the fastest reference case of its precision in its group.

    An int8 model is put against an int8 reference and an fp32 one against fp32 (an int8 rate over an fp32
    GEMM once read "102 %"); a model whose precision has no reference in its group gets no limit.
    """
    best: dict = {}
    for r in results:
        if r.is_reference and r.ok and r.model_gmacs_per_s and r.precision:
            key = (r.group, r.precision)
            if key not in best or r.model_gmacs_per_s > best[key].model_gmacs_per_s:
                best[key] = r
    out = []
    for r in results:
        ref = best.get((r.group, r.precision))
        if ref is None or r.is_reference or not r.model_gmacs_per_s:
            out.append(r)
            continue
        out.append(dataclasses.replace(r, limit_gmacs_per_s=ref.model_gmacs_per_s, limit_case=ref.label,
                                       fraction_of_limit=r.model_gmacs_per_s / ref.model_gmacs_per_s))
    return out
