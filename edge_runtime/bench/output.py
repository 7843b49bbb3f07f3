"""The benchmark's output formats: the terminal / Markdown table, CSV, JSON."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

from deconv_edge_core.text import markdown_table, text_table

from .config import STAGES
from .results import CaseResult


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
                    "model_gmacs_per_s": r.model_gmacs_per_s, "precision": r.precision,
                    "limit_gmacs_per_s": r.limit_gmacs_per_s, "limit_case": r.limit_case,
                    "fraction_of_limit": r.fraction_of_limit, "peak_rss_mb": r.peak_rss_mb,
                    "baseline_rss_mb": r.baseline_rss_mb,
                    "ratio_model_p50": r.ratio_vs_first.model_p50 if r.ratio_vs_first else None,
                    "ratio_frame_p50": r.ratio_vs_first.frame_p50 if r.ratio_vs_first else None,
                    "coverage": (r.coverage or {}).get("summary"), "error": r.error})
        rows.append(row)
    return rows


def write_csv(path: str | Path, results: Sequence[CaseResult]) -> None:
    import csv
    import io

    from deconv_edge_core.fsutil import write_text_atomic

    rows = csv_rows(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["label"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    write_text_atomic(path, buf.getvalue())


def write_json(path: str | Path, report) -> None:
    from deconv_edge_core.fsutil import write_json_atomic

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
    ("prec", lambda r: r.precision or "-"),
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
    ("GMAC/s", lambda r: fmt(r.model_gmacs_per_s, 1)),
    ("% limit", lambda r: fmt(100 * r.fraction_of_limit if r.fraction_of_limit is not None else None, 0)),
    ("coverage", lambda r: (r.coverage or {}).get("summary") or "-"),
)


#: The terminal leaves coverage out of the table (too wide) and lists it below.
TERMINAL_COLUMNS: tuple = tuple(c for c in TABLE_COLUMNS if c[0] != "coverage")


def table_rows(results: Sequence[CaseResult], columns: Sequence = TABLE_COLUMNS) -> list:
    """Header and cells of the summary table (errors replace the numbers)."""
    rows = [[h for h, _ in columns]]
    for r in results:
        if r.error:
            head = [fn(r) for h, fn in columns[:3]]
            rows.append(head + [f"ERROR: {r.error}"] + [""] * (len(columns) - len(head) - 1))
        else:
            rows.append([fn(r) for _, fn in columns])
    return rows


def plain_table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned text table (for terminals without ``rich``): names left-aligned, numbers right-aligned."""
    return text_table(rows, numbers_right_from=2)


def markdown_report(report) -> str:
    """The run as Markdown: device, settings, the table, warnings."""
    d = report.device
    cfg = report.config
    lines = [f"# deconv-edge bench ({report.created})", "",
             f"- device: {d.short()}; governor {d.governor or 'unknown'}; Python {d.python}; "
             + ", ".join(f"{k} {v}" for k, v in d.versions.items()),
             f"- frame {cfg.input_hw[0]}x{cfg.input_hw[1]} (HxW, low resolution), {cfg.runs} runs after "
             f"{cfg.warmup} warm-up, cases interleaved per thread count; 'x first' = frame p50 / the first case's; "
             "'% limit' = the model call's MAC rate over the fastest reference case of its precision (prec)",
             f"- command: `{report.command}`" if report.command else "", ""]
    lines.append(markdown_table(table_rows(report.results)))
    if report.warnings:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in report.warnings]
    return "\n".join(ln for ln in lines if ln is not None) + "\n"


def write_markdown(path: str | Path, report) -> None:
    from deconv_edge_core.fsutil import write_text_atomic

    write_text_atomic(path, markdown_report(report))
