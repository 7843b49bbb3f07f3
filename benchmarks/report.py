"""``python -m benchmarks.report``: the README's benchmark tables and the PSNR-vs-latency plot, from one run.

Reads ``benchmarks/results/``: ``quality.json`` and ``speed.json`` (x2, every format and upsampler form),
``speed_shipped_x{2,3,4}.json`` and ``quality_shipped_x{3,4}.json`` (the shipped models) and
``upsampler_forms.json``, where present. Every file must carry the same ``run_id`` (``run_all.sh`` gives all
its steps one): results of two runs are never put into one table, and a file from another run is an error.
Writes ``benchmarks/results/summary.md`` and ``psnr_vs_latency.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from deconv_edge_core.text import markdown_table

from .common import RESULTS_DIR, read_json, say

#: The speed column the plot and the "x peer" ratio use: 320x240 frames, one thread.
PLOT_GROUP = "320x240 1T"
#: The peer row the speed ratios are taken against (OpenCV's FSRCNN runs in fp32).
PEER_REFERENCE = "peer:FSRCNN:x{scale}"
PEER_NAME = "OpenCV FSRCNN (fp32)"
#: Optional result files, in the order the summary shows them.
FILES = ("quality.json", "speed.json", "speed_shipped_x2.json", "speed_shipped_x3.json", "speed_shipped_x4.json",
         "quality_shipped_x3.json", "quality_shipped_x4.json", "upsampler_forms.json")


class MixedRunsError(ValueError):
    """Result files from different runs (or from before runs were named)."""


def same_run(results: dict) -> str:
    """The one ``run_id`` shared by every loaded result file.

    Raises:
        MixedRunsError: a file has no run id or another run's.
    """
    ids = {name: d.get("run_id") for name, d in results.items()}
    if None in ids.values() or len(set(ids.values())) != 1:
        raise MixedRunsError("the result files are not from one run (" + ", ".join(f"{k}: {v}" for k, v in ids.items())
                             + "); rerun benchmarks/run_all.sh, which gives all of them one run id")
    return next(iter(ids.values()))


def same_files(q: dict, s: dict) -> list:
    """Keys whose artifact differs (sha256) between a quality and a speed file: their PSNR is not that file's."""
    qs = {r["key"]: r.get("artifact_sha256") for r in q["rows"] if r.get("artifact_sha256")}
    return sorted({r["key"] for r in s["rows"] if r.get("artifact_sha256") and qs.get(r["key"]) not in
                   (None, r["artifact_sha256"])})


def _f(v, digits: int = 2, suffix: str = "") -> str:
    return "-" if v is None else f"{v:.{digits}f}{suffix}"


def _md(rows: list) -> str:
    return markdown_table(rows, numbers_right_from=1)


def quality_table(q: dict) -> str:
    rows = [["model", "Set5 PSNR dB", "Set5 SSIM", "Set14 PSNR dB", "Set14 SSIM"]]
    for r in q["rows"]:
        s5, s14 = r.get("set5") or {}, r.get("set14") or {}
        rows.append([r["name"], _f(s5.get("psnr_db")), _f(s5.get("ssim"), 4), _f(s14.get("psnr_db")),
                     _f(s14.get("ssim"), 4)])
    return _md(rows)


def speed_groups(s: dict) -> list:
    """Group names in run order (``320x240 1T`` …)."""
    out = []
    for r in s["rows"]:
        if r["group"] not in out:
            out.append(r["group"])
    return out


def _by_key(s: dict) -> dict:
    out: dict = {}
    for r in s["rows"]:
        out.setdefault(r["key"], {})[r["group"]] = r
    return out


def _frame_ms(r: Optional[dict]) -> Optional[float]:
    return r["frame"]["p50_ms"] if r and not r.get("error") and r.get("frame") else None


def speed_table(s: dict, psnr: dict) -> str:
    """One row per model: precision, Set5 PSNR, frame-path p50 per group, MACs, share of its precision's limit,
    ratio to the peer (whose precision is fp32: the column says so)."""
    groups = speed_groups(s)
    by_key = _by_key(s)
    ref = PEER_REFERENCE.format(scale=s.get("scale", 2))
    ref_ms = _frame_ms(by_key.get(ref, {}).get(PLOT_GROUP))
    header = (["model", "precision", "Set5 dB"] + [f"{g} ms" for g in groups]
              + ["MMAC/frame (320x240)", f"MAC/s, % of own-precision limit ({PLOT_GROUP})",
                 f"÷ {PEER_NAME}, {PLOT_GROUP}"])
    rows = [header]
    for key, per_group in by_key.items():
        any_row = next(iter(per_group.values()))
        if key.startswith("ref:"):
            continue
        cells = [any_row["label"], any_row.get("precision") or "-", _f(psnr.get(key))]
        for g in groups:
            r = per_group.get(g)
            ms = _frame_ms(r)
            cells.append("error" if r and r.get("error") else (f"{_f(ms)} ({_f(r['frame']['fps'], 0)} fps)"
                                                               if ms else "-"))
        first = per_group.get(PLOT_GROUP) or any_row
        cells.append(_f(first["macs_per_frame"] / 1e6, 0) if first.get("macs_per_frame") else "-")
        frac = first.get("fraction_of_limit")
        cells.append(f"{_f(100 * frac, 1)} % of {first.get('precision')}" if frac else "-")
        mine = _frame_ms(first)
        ratio = mine / ref_ms if mine and ref_ms else None
        cells.append("<0.01" if ratio is not None and ratio < 0.01 else
                     (f"{_f(ratio, 2)} ({first.get('precision')} vs fp32)" if ratio is not None else "-"))
        rows.append(cells)
    return _md(rows)


def reference_table(s: dict) -> str:
    """GMAC/s each reference reached per group: the limits the '% of limit' column divides by."""
    groups = speed_groups(s)
    rows = [["reference (precision)"] + [f"{g} GMAC/s" for g in groups]]
    for key, per_group in _by_key(s).items():
        if key.startswith("ref:"):
            any_row = next(iter(per_group.values()))
            rows.append([f"{any_row['label']} ({any_row.get('precision')})"]
                        + [_f((per_group.get(g) or {}).get("model_gmacs_per_s"), 1) for g in groups])
    return _md(rows)


def peer_table(s: dict) -> str:
    """Ours against the peer per group: our fastest int8 file (what a user picks between) and our fastest
    fp32 file (the same precision as the peer's fp32), each named."""
    groups = speed_groups(s)
    by_key = _by_key(s)
    ref = by_key.get(PEER_REFERENCE.format(scale=s.get("scale", 2)), {})
    rows = [["comparison"] + groups]
    for precision, what in (("int8", "ours int8 ÷ peer fp32 (what a user picks between)"),
                            ("fp32", "ours fp32 ÷ peer fp32 (same precision)")):
        cells = [what]
        for g in groups:
            mine = [r for key, pg in by_key.items() if key.startswith("ours:") for r in [pg.get(g)]
                    if r and r.get("precision") == precision and _frame_ms(r)]
            peer = _frame_ms(ref.get(g))
            if not mine or not peer:
                cells.append("-")
                continue
            best = min(mine, key=_frame_ms)
            cells.append(f"{_frame_ms(best):.2f} / {peer:.2f} = {_frame_ms(best) / peer:.2f}x ({best['label']})")
        rows.append(cells)
    return _md(rows)


def machine_lines(s: dict) -> list:
    d = s["device"]
    load = d.get("load_avg_1m")
    lines = [f"- machine: {s.get('device_short') or s.get('cpu_kind')}; governor {d.get('governor') or 'unknown'}; "
             f"Python {d.get('python')}; " + ", ".join(f"{k} {v}" for k, v in (d.get("versions") or {}).items())]
    if load is not None and load > 0.5 * (d.get("cores_usable") or 1):
        lines.append(f"- the machine was loaded (load average {load:.1f} on {d.get('cores_usable')} cores at the "
                     "start): absolute times are pessimistic and noisy; the ratios between cases, which ran "
                     "interleaved, are the comparable figures")
    return lines


def summary(res: dict, run: str, command: str, plot_name: Optional[str]) -> str:
    q, s = res.get("quality.json"), res.get("speed.json")
    lines = ["# Benchmark results", "", f"- run: `{run}`, command `{command}`"]
    lines += [f"- {name}: `{d['command']}` at {d['created']}" for name, d in res.items()]
    any_speed = s or next((d for n, d in res.items() if n.startswith("speed")), None)
    if any_speed:
        lines += machine_lines(any_speed)
        lines.append(f"- CPU kind (every speed figure holds for it): {any_speed.get('cpu_kind')}")
    if q:
        lines += ["", f"## Quality (x{q['scale']}, Y-PSNR / SSIM per `../shared/PROTOCOL.md`)", "", quality_table(q)]
        if not q.get("peer", {}).get("used"):
            lines += ["", f"The peer's rows are missing: {q['peer'].get('problem')}."]
        bad = [c for c in q.get("checks", []) if not c["ok"]]
        lines += ["", "Bicubic and the peer match the values PROTOCOL.md measured (within 0.05 dB)." if not bad else
                  "Differences from PROTOCOL.md: " + "; ".join(f"{c['row']} {c['set']} {c['diff_db']:+.2f} dB"
                                                              for c in bad)]
    if s:
        psnr = {r["key"]: (r.get("set5") or {}).get("psnr_db") for r in q["rows"]} if q else {}
        lines += ["", f"## Speed (x{s['scale']}, whole frame path BGR → BGR, p50 ms with FPS; one interleaved run)",
                  "", f"{s.get('cpu_kind')}.", "", speed_table(s, psnr), "",
                  f"{s['runs']} runs after {s['warmup']} warm-up per case; every case in its own process; frame "
                  "sizes are width x height; T = threads (runtime and OpenCV). MAC/s, % of own-precision limit: the "
                  "model call's multiply-accumulate rate over the fastest reference of the same precision in the "
                  "same group (below). Peer MACs: OpenCV's getFLOPS / 2.", "",
                  "MAC-rate references, same run:", "", reference_table(s), "", "Against the peer, same run:", "",
                  peer_table(s)]
        for w in s.get("warnings", []) + s.get("notes", []):
            lines.append(f"\n> {w}")
    forms = res.get("upsampler_forms.json")
    if forms:
        from .upsampler_forms import markdown as forms_markdown

        lines += ["", "## Upsampler forms (static against static, dynamic against dynamic)", "",
                  forms_markdown(forms)]
    if plot_name:
        lines += ["", f"![PSNR vs latency]({plot_name})"]
    return "\n".join(lines) + "\n"


def load_results(folder: Path) -> dict:
    return {name: read_json(folder / name) for name in FILES if (folder / name).is_file()}


def main(argv=None) -> int:
    from deconv_edge_core.fsutil import write_text_atomic

    from .plot import plot

    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS_DIR))
    p.add_argument("--command", default=os.environ.get("BENCH_COMMAND") or "benchmarks/run_all.sh",
                   help="the command named in the summary (run_all.sh passes its own)")
    args = p.parse_args(argv)
    folder = Path(args.results)
    res = load_results(folder)
    if "quality.json" not in res and "speed.json" not in res:
        say(f"error: no quality.json or speed.json in {folder}; run benchmarks/run_all.sh")
        return 2
    try:
        run = same_run(res)
    except MixedRunsError as exc:
        say(f"error: {exc}")
        return 2
    q, s = res.get("quality.json"), res.get("speed.json")
    stale = same_files(q, s) if q and s else []
    if stale:
        say(f"error: quality.json and speed.json measured different files for {', '.join(stale)}")
        return 2
    panels = [(2, q, s)] + [(k, res.get(f"quality_shipped_x{k}.json"), res.get(f"speed_shipped_x{k}.json"))
                            for k in (3, 4)]
    png = folder / "psnr_vs_latency.png"
    device = (s or {}).get("cpu_kind", "")
    made = plot(panels, PLOT_GROUP, png, f"Quality vs. speed, ours (blue int8, purple fp32) and the OpenCV peer "
                                         f"(orange, fp32); run {run}; {device}")
    write_text_atomic(folder / "summary.md", summary(res, run, args.command, png.name if made else None))
    say(f"wrote {folder / 'summary.md'}" + (f" and {png}" if made else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
