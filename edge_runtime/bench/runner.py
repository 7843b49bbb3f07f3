"""On-device latency benchmark: ``deconv-edge bench`` and ``benchmarks/speed`` put together from the parts.

Every measured configuration (artifact x backend x thread count, or bicubic, a MAC-rate reference, the OpenCV
peer) is a *case* that lives in its own worker process (:mod:`.worker`, or any program speaking the same
JSON-lines protocol, :mod:`.protocol`). One process per case gives each one a clean peak RSS, its own thread
pools (OpenCV's is process-wide) and a load time free of the others' caches. The cases of one group are
loaded one after the other, then stepped in turn (:mod:`.schedule`), so drift on a busy machine hits all of
them alike; ratios are taken against the first case.

Each iteration times the model call alone (the backend entry point the frame path uses, on the tensor it
feeds) and the whole frame path (``Enhancer``: preprocess, invoke, postprocess, each reported). Timing happens
inside the worker with ``time.perf_counter``, so the protocol's pipes never count. The backend counts its own
calls (:class:`~edge_runtime.inference.backends.CallStats`), which gives the calls per frame.

MACs come from walking the graph that runs, at the shape it runs (:mod:`.graph`). The limit a model's MAC rate
is put against is measured in the same group, per precision: an int8 convolution through LiteRT/XNNPACK for
int8 models, an fp32 one and numpy's fp32 GEMM for fp32 models (:mod:`.references`).

The parts: :mod:`.config` (options, case specs), :mod:`.ipc` (the parent's side of the protocol),
:mod:`.results` (dataclasses, ratios, limits), :mod:`.fingerprint` (the device), :mod:`.output` (tables, CSV,
JSON).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

from deconv_edge_core.errors import UserError

from .config import BenchConfig, CaseSpec
from .fingerprint import DeviceInfo, device_fingerprint
from .ipc import Case, SubprocessCase
from .references import reference_specs
from .schedule import ProgressSink, run_groups

SCHEMA = "deconv-edge-bench/2"


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
    from deconv_edge_core.manifest import load_manifest, verify_artifact
    from edge_runtime.inference.backends import BACKENDS, default_backend_for, edgetpu, litert, onnxruntime  # noqa: F401 (registry)

    for key in config.backends:
        if key != "auto":
            reason = BACKENDS.get(key).available()  # unknown → one line listing the valid ones
            if reason:
                raise UserError(f"backend '{key}' is not usable here: {reason}")
    pairs = []
    for given in config.artifacts:
        manifest, artifact = load_manifest(given)
        artifact = artifact.resolve()  # the worker needs no idea of the caller's working folder
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
                                  artifact=str(Path(artifact).resolve()), backend=key, scale=manifest.scale))
        if config.bicubic:
            specs.append(CaseSpec(kind="bicubic", label=f"bicubic x{pairs[0][1].scale}", threads=int(threads),
                                  input_hw=tuple(config.input_hw), scale=pairs[0][1].scale))
        if config.references:
            specs.extend(reference_specs(int(threads), tuple(config.input_hw)))
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
    t0 = time.perf_counter()
    results = run_groups([(name, [case_factory(s) for s in specs]) for name, specs in groups], config.runs,
                         config.warmup, progress)
    warnings = list(device.warnings()) + [f"{r.label} ({r.group}): {r.error}" for r in results if r.error]
    return BenchReport(created=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=command,
                       config=config, device=device, results=tuple(results), warnings=tuple(warnings),
                       wall_s=time.perf_counter() - t0)
