"""What ``deploy`` prints: one line per host, and one latency table across every host that benchmarked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from deconv_edge_core.text import text_table

from .deploy import HostResult


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    return text_table([list(headers)] + [[("" if c is None else c) for c in r] for r in rows])


def summary_table(results: Sequence[HostResult]) -> str:
    rows = [(r.host, "ok" if r.ok else "FAILED", r.release or "-", r.verified_by or "-", r.accuracy or "-",
             f"{r.seconds:.1f}", r.message) for r in results]
    return format_table(("host", "status", "release", "verified by", "accuracy", "s", "message"), rows)


def latency_rows(host: str, payload) -> list[tuple]:
    """Table rows from one device's ``bench --json`` file (schema ``deconv-edge-bench/1`` or ``/2``: the fields
    read here are in both).

    Per result: frame size (WxH), the whole frame path's p50 / p90 / FPS (the model call's p50 beside it), and
    the device's board or CPU, or the error.
    """
    results = payload.get("results") if isinstance(payload, dict) else None
    device = payload.get("device") if isinstance(payload, dict) else None
    cpu = ""
    if isinstance(device, dict):
        cpu = str(device.get("board_model") or device.get("cpu_model") or "")
    rows = []
    for rec in results if isinstance(results, list) else []:
        if not isinstance(rec, dict):
            continue
        name = Path(str(rec.get("artifact"))).name if rec.get("artifact") else str(rec.get("label", "?"))
        frame = rec.get("frame") if isinstance(rec.get("frame"), dict) else {}
        model = rec.get("model") if isinstance(rec.get("model"), dict) else {}
        note = f"error: {rec['error']}" if rec.get("error") else cpu
        hw = rec.get("frame_hw")
        size = f"{hw[1]}x{hw[0]}" if isinstance(hw, list) and len(hw) == 2 else "-"
        rows.append((host, name, rec.get("backend") or "-", rec.get("threads", "-"), size, _fmt(frame.get("p50_ms")),
                     _fmt(frame.get("p90_ms")), _fmt(frame.get("fps")), _fmt(model.get("p50_ms")), note))
    return rows


def _fmt(v) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "-"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _bench_payloads(results: Sequence[HostResult]) -> list[tuple]:
    out = []
    for r in results:
        if r.bench_json and Path(r.bench_json).is_file():
            try:
                out.append((r.host, json.loads(Path(r.bench_json).read_text())))
            except ValueError:
                continue
    return out


def latency_table(results: Sequence[HostResult]) -> Optional[str]:
    """One table of every host's benchmark (``None`` when no host benchmarked)."""
    rows = [row for host, payload in _bench_payloads(results) for row in latency_rows(host, payload)]
    if not rows:
        return None
    return format_table(("host", "artifact", "backend", "threads", "frame", "p50 ms", "p90 ms", "FPS",
                         "model p50 ms", "device"), rows)


def bench_warnings(results: Sequence[HostResult]) -> list[str]:
    """``host: warning`` for each reason a device's numbers may be off (governor, throttling, load)."""
    return [f"{host}: {w}" for host, payload in _bench_payloads(results) if isinstance(payload, dict)
            for w in payload.get("warnings") or []]
