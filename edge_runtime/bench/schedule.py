"""The interleaving scheduler: load every case of a group, then step them in turn (A B C A B C …).

Drift on a busy machine (another job starting, thermal throttling) then hits every case of a group alike, so
ratios within a group stay comparable when absolute times do not.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence

from .ipc import Case, CaseError
from .results import Samples, build_result, with_limits, with_ratios


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


def group_steps(n_cases: int, runs: int, warmup: int) -> int:
    """Progress units of one group: loads, rounds and finishes."""
    return n_cases * (2 + runs + warmup)


def run_interleaved(cases: Sequence[Case], runs: int, warmup: int, group: str = "",
                    progress: Optional[ProgressSink] = None) -> list:
    """Load every case, then step them in turn (A B A B …): ``warmup`` unmeasured rounds, ``runs`` measured.

    A case that fails is reported with its error and left out of the later rounds; the others go on.
    Returns one :class:`~edge_runtime.bench.results.CaseResult` per case, in order, without ratios or limits
    (see :func:`run_groups`).
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
        where = f" ({group})" if group else ""
        for round_ in range(warmup + runs):
            phase = f"warm-up {round_ + 1}/{warmup}" if round_ < warmup else f"run {round_ - warmup + 1}/{runs}"
            for i, case in enumerate(cases):
                progress.note(f"{phase}: {case.spec.label}{where}")
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
            progress.note(f"finishing {case.spec.label}{where}")
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


def run_groups(groups: Sequence[tuple], runs: int, warmup: int, progress: Optional[ProgressSink] = None) -> list:
    """Run ``(name, cases)`` groups one after the other; every result with its ratios and MAC-rate limit.

    A case's worker process starts only when its group does (:meth:`Case.start`).
    """
    progress = progress or NoProgress()
    progress.begin(sum(group_steps(len(cases), runs, warmup) for _, cases in groups))
    results = []
    try:
        for name, cases in groups:
            results.extend(run_interleaved(cases, runs, warmup, name, progress))
    finally:
        progress.end()
    return with_limits(with_ratios(results))
