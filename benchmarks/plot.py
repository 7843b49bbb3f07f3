"""The PSNR-vs-latency figure: one panel per scale, our artifacts (colour = precision, marker = format, hollow =
deconvolution upsampler) against the peer (fp32).

Latency is the whole frame path (BGR in, BGR out), p50, in milliseconds on a log axis with plain ms tick labels.
Every point of a panel comes from one speed file and one quality file of the same run.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Sequence

#: Colour per precision: a same-precision comparison is a same-colour one (the peer runs in fp32).
PRECISION_COLORS = {"int8": "tab:blue", "fp32": "tab:purple"}
FORMAT_MARKERS = {"tflite-fp32": "o", "tflite-fp16": "D", "tflite-dynamic": "h", "tflite-int8": "v", "edgetpu": "*",
                  "onnx-fp32": "s", "onnx-fp16": "d", "onnx-int8": "P"}
PEER_COLOR = "tab:orange"


def plain_ticks(lo_ms: float, hi_ms: float) -> list:
    """Tick positions (ms) for a log axis from ``lo_ms`` to ``hi_ms``: 1, 2, 5 per decade, as plain numbers."""
    out = []
    for e in range(math.floor(math.log10(max(lo_ms, 1e-3))) - 1, math.ceil(math.log10(hi_ms)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** e
            if lo_ms <= v <= hi_ms:
                out.append(v)
    return out


def tick_label(v: float) -> str:
    """``0.5``, ``2``, ``20``, ``200``: never ``2×10¹``."""
    return f"{v:g}"


def panel_points(q: dict, s: dict, group: str) -> list:
    """``(key, label, precision, format, ms, dB)`` of every case with both a latency in ``group`` and a PSNR."""
    psnr = {r["key"]: (r.get("set5") or {}).get("psnr_db") for r in q["rows"]}
    out = []
    for r in s["rows"]:
        if r["group"] != group or r.get("error") or not r.get("frame") or psnr.get(r["key"]) is None:
            continue
        out.append((r["key"], r["label"], r.get("precision"), r.get("format"), r["frame"]["p50_ms"], psnr[r["key"]]))
    return out


def plot(panels: Sequence[tuple], group: str, path: Path, title: str) -> Optional[list]:
    """Draw ``(scale, quality, speed)`` panels into ``path``; returns each panel's tick labels (None if no data)."""
    panels = [(scale, q, s) for scale, q, s in panels if q and s]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 7.2), dpi=110, squeeze=False)
    labels_out = []
    for ax, (scale, q, s) in zip(axes[0], panels):
        points = panel_points(q, s, group)
        models = [p for p in points if not p[0].startswith("bicubic")]
        if not models:
            continue
        for key, label, precision, fmt, ms, db in models:
            if key.startswith("ours:"):
                color = PRECISION_COLORS.get(precision, "k")
                hollow = ":deconv:" in key  # filled = sub-pixel upsampler, hollow = deconvolution
                ax.scatter([ms], [db], marker=FORMAT_MARKERS.get(fmt, "x"), s=55, zorder=3, linewidths=1.2,
                           facecolors="none" if hollow else color, edgecolors=color,
                           label=f"ours ({precision}): {label}")
            else:
                ax.scatter([ms], [db], c=PEER_COLOR, marker="s", s=55, zorder=3, label=f"{label}, fp32")
                ax.annotate(label.replace(" (peer)", ""), (ms, db), textcoords="offset points", xytext=(5, -10),
                            fontsize=7, color=PEER_COLOR)
        for key, _label, _p, _f, ms, db in points:
            if key.startswith("bicubic"):
                ax.axhline(db, color="tab:gray", ls=":", lw=1)
                ax.text(0.01, db, f"bicubic ({ms:.2g} ms)", va="bottom", fontsize=7, color="tab:gray",
                        transform=ax.get_yaxis_transform())
        for r in q["rows"]:
            if r["kind"] == "published" and (r.get("set5") or {}).get("psnr_db"):
                ax.axhline(r["set5"]["psnr_db"], color="tab:green", ls="--", lw=1)
                ax.text(0.01, r["set5"]["psnr_db"], f"{r['name']} (float; latency not measured)", va="bottom",
                        fontsize=7, color="tab:green", transform=ax.get_yaxis_transform())
        lo, hi = min(p[4] for p in models) / 1.5, max(p[4] for p in models) * 1.5
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ticks = plain_ticks(lo, hi)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: tick_label(v)))
        ax.xaxis.set_minor_locator(NullLocator())
        labels_out.append([tick_label(t) for t in ticks])
        ax.set_xlabel(f"whole-frame latency, p50 ms ({group.replace('T', ' thread')}, BGR in and out)")
        ax.set_ylabel(f"Set5 x{scale} Y-PSNR (dB)")
        ax.set_title(f"x{scale}: run {s.get('run_id', '?')}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=6, frameon=False, ncol=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return labels_out
