"""``python -m benchmarks.report``: the README's quality and speed tables and the PSNR-vs-latency plot.

Reads ``benchmarks/results/quality.json`` and ``speed.json`` (either may be missing: its section says so) and
writes ``benchmarks/results/summary.md`` (date, machine and command included) and
``benchmarks/results/psnr_vs_latency.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from .common import RESULTS_DIR, read_json, say

#: The speed column the plot and the "x peer" ratio use: 320x240 frames, one thread.
PLOT_GROUP = "320x240 1T"
#: The peer row the speed ratios are taken against.
PEER_REFERENCE = "peer:FSRCNN:x2"


def _f(v, digits: int = 2, suffix: str = "") -> str:
    return "-" if v is None else f"{v:.{digits}f}{suffix}"


def _md(rows: list) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(rows[0]))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows[1:]]
    return "\n".join(out)


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


def speed_table(s: dict, psnr: dict) -> str:
    """One row per case: Set5 PSNR, frame-path p50 per group, MACs, share of GEMM, ratio to the peer."""
    groups = speed_groups(s)
    by_key: dict = {}
    for r in s["rows"]:
        by_key.setdefault(r["key"], {})[r["group"]] = r
    ref = by_key.get(PEER_REFERENCE, {}).get(PLOT_GROUP)
    ref_ms = ref["frame"]["p50_ms"] if ref and ref.get("frame") else None
    header = ["model", "Set5 dB"] + [f"{g} ms" for g in groups] + ["MMAC/frame (320x240)", "MAC/s ÷ GEMM (1T)",
                                                                    f"x OpenCV FSRCNN ({PLOT_GROUP})"]
    rows = [header]
    for key, per_group in by_key.items():
        if key == "gemm":
            continue
        any_row = next(iter(per_group.values()))
        cells = [any_row["label"], _f(psnr.get(key))]
        for g in groups:
            r = per_group.get(g)
            if r is None or r.get("error"):
                cells.append("error" if r else "-")
            else:
                fps = r["frame"]["fps"] if r.get("frame") else None
                cells.append(f"{_f(r['frame']['p50_ms'])} ({_f(fps, 0)} fps)" if r.get("frame") else "-")
        first = per_group.get(PLOT_GROUP) or any_row
        cells.append(_f(first["macs_per_frame"] / 1e6, 0) if first.get("macs_per_frame") else "-")
        cells.append(_f(100 * first["fraction_of_gemm"], 1, " %") if first.get("fraction_of_gemm") else "-")
        mine = first["frame"]["p50_ms"] if first.get("frame") and not first.get("error") else None
        ratio = mine / ref_ms if mine and ref_ms else None
        cells.append("<0.01" if ratio is not None and ratio < 0.01 else _f(ratio, 2))
        rows.append(cells)
    gemm = by_key.get("gemm", {})
    if gemm:
        rows.append([next(iter(gemm.values()))["label"] + " (GMAC/s)", "-"]
                    + [_f(gemm[g]["model_gmacs_per_s"], 1) if g in gemm and gemm[g].get("model_gmacs_per_s") else "-"
                       for g in groups] + ["-", "100 %", "-"])
    return _md(rows)


def plot(q: Optional[dict], s: Optional[dict], path: Path) -> bool:
    """PSNR on Set5 against frame-path latency (320x240, 1 thread), ours and the peer; False if no data."""
    if not q or not s:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    psnr = {r["key"]: (r.get("set5") or {}).get("psnr_db") for r in q["rows"]}
    points = []
    for r in s["rows"]:
        if r["group"] != PLOT_GROUP or r.get("error") or not r.get("frame") or psnr.get(r["key"]) is None:
            continue
        points.append((r["key"], r["label"], r["frame"]["p50_ms"], psnr[r["key"]]))
    models = [p for p in points if not p[0].startswith("bicubic")]
    if not models:
        return False
    fig, ax = plt.subplots(figsize=(10, 6), dpi=120)
    # Ours: colour = upsampler form, marker = format; the peer: orange squares, named on the plot.
    form_colors = {"deconv": "tab:blue", "subpixel": "tab:purple"}
    format_markers = {"tflite-fp32": "o", "tflite-fp16": "D", "tflite-dynamic": "h", "tflite-int8": "v",
                      "edgetpu": "*", "onnx-fp32": "s", "onnx-fp16": "d", "onnx-int8": "P"}
    for key, label, ms, db in models:
        if key.startswith("ours:"):
            _, fmt, form, _ = key.split(":")
            ax.scatter([ms], [db], c=form_colors.get(form, "k"), marker=format_markers.get(fmt, "x"), s=55,
                       label=f"ours: {label}", zorder=3, edgecolors="white", linewidths=0.5)
        else:
            ax.scatter([ms], [db], c="tab:orange", marker="s", s=60, label=label, zorder=3)
            ax.annotate(label.replace(" (peer)", ""), (ms, db), textcoords="offset points", xytext=(6, -10),
                        fontsize=8, color="tab:orange")
    ax.set_xscale("log")
    lo, hi = min(p[2] for p in models), max(p[2] for p in models)
    ax.set_xlim(lo / 1.6, hi * 1.6)
    # Reference lines: x in axes coordinates, y in data, so each label sits on its line whatever the scale.
    for r in q["rows"]:
        if r["kind"] == "published" and (r.get("set5") or {}).get("psnr_db"):
            ax.axhline(r["set5"]["psnr_db"], color="tab:green", ls="--", lw=1)
            ax.text(0.01, r["set5"]["psnr_db"], f"{r['name']} (float; latency not measured)", va="bottom",
                    fontsize=8, color="tab:green", transform=ax.get_yaxis_transform())
    for key, _label, ms, db in points:
        if key.startswith("bicubic"):
            ax.axhline(db, color="tab:gray", ls=":", lw=1)
            ax.text(0.01, db, f"bicubic ({ms:.2g} ms)", va="bottom", fontsize=8, color="tab:gray",
                    transform=ax.get_yaxis_transform())
    ax.set_xlabel(f"whole-frame latency, p50 ms (x2, {PLOT_GROUP.replace('T', ' thread')}, BGR in and out)")
    ax.set_ylabel("Set5 x2 Y-PSNR (dB)")
    ax.set_title("Quality vs. speed: deconv-edge artifacts and the OpenCV peer\n"
                 f"{s['device_short'][:90]}, {s['created'][:10]}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def summary(q: Optional[dict], s: Optional[dict], command: str, plot_name: Optional[str]) -> str:
    lines = ["# Benchmark results", ""]
    when = [d["created"] for d in (q, s) if d]
    lines.append(f"- date: {', '.join(sorted(set(when))) or 'not run'}")
    if s:
        d = s["device"]
        versions = ", ".join(f"{k} {v}" for k, v in d["versions"].items())
        lines.append(f"- machine: {s['device_short']}; governor {d['governor'] or 'unknown'}; "
                     f"load average {_f(d.get('load_avg_1m'), 1)} at start; Python {d['python']}; {versions}")
    lines.append(f"- command: `{command}`")
    if q:
        lines.append(f"- quality: `{q['command']}`; speed: `{s['command']}`" if s else f"- quality: `{q['command']}`")
    lines += ["", "## Quality (x2, Y-PSNR / SSIM per `../shared/PROTOCOL.md`)", ""]
    if q:
        lines.append(quality_table(q))
        peer = q.get("peer", {})
        if not peer.get("used"):
            lines += ["", f"The peer's rows are missing: {peer.get('problem')}."]
        bad = [c for c in q.get("checks", []) if not c["ok"]]
        lines += ["", "Bicubic and the peer match the values PROTOCOL.md measured (within 0.05 dB)." if not bad else
                  "Differences from PROTOCOL.md: " + "; ".join(f"{c['row']} {c['set']} {c['diff_db']:+.2f} dB"
                                                              for c in bad)]
        if any(r.get("status") == "failed" for r in q["rows"]):
            lines += ["", "[gate failed] = the artifact's manifest says it failed convert's accuracy gate."]
    else:
        lines.append("Not run (`python -m benchmarks.quality`).")
    lines += ["", "## Speed (x2, whole frame path BGR → BGR, p50 ms with FPS; interleaved in one run)", ""]
    if s:
        psnr = {r["key"]: (r.get("set5") or {}).get("psnr_db") for r in q["rows"]} if q else {}
        lines.append(speed_table(s, psnr))
        lines += ["", f"{s['runs']} runs after {s['warmup']} warm-up per case; every case in its own process; "
                  "frame sizes are width x height; T = threads (runtime and OpenCV). "
                  "MAC/s ÷ GEMM: the model call's multiply-accumulate rate over numpy's float32 matrix product "
                  "with the same threads, measured in the same run. Peer MACs: OpenCV's getFLOPS / 2."]
        if not s.get("peer", {}).get("used"):
            lines += ["", f"The peer's rows are missing: {s['peer'].get('problem')}."]
        for w in s.get("warnings", []) + s.get("notes", []):
            lines.append(f"\n> {w}")
    else:
        lines.append("Not run (`python -m benchmarks.speed`).")
    if plot_name:
        lines += ["", f"![PSNR vs latency]({plot_name})"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from edge_runtime.fsutil import write_text_atomic

    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS_DIR))
    p.add_argument("--command", default=os.environ.get("BENCH_COMMAND") or "benchmarks/run_all.sh",
                   help="the command named in the summary (run_all.sh passes its own)")
    args = p.parse_args(argv)
    res = Path(args.results)
    q = read_json(res / "quality.json") if (res / "quality.json").is_file() else None
    s = read_json(res / "speed.json") if (res / "speed.json").is_file() else None
    if not q and not s:
        say(f"error: no quality.json or speed.json in {res}; run benchmarks/run_all.sh")
        return 2
    png = res / "psnr_vs_latency.png"
    made = plot(q, s, png)
    write_text_atomic(res / "summary.md", summary(q, s, args.command, png.name if made else None))
    say(f"wrote {res / 'summary.md'}" + (f" and {png}" if made else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
