"""``report.md`` and ``report.json``: one row per artifact (size, ops, PSNR, drop, gate, status)."""

from __future__ import annotations

from pathlib import Path

from deconv_edge_core.fsutil import write_json_atomic, write_text_atomic

#: Ops worth naming in the table (the rest are counted).
_KEY_OPS = ("TRANSPOSE_CONV", "ConvTranspose", "DEPTH_TO_SPACE", "DepthToSpace", "QUANTIZE", "DEQUANTIZE",
            "QuantizeLinear", "DequantizeLinear")


def _num(v, fmt: str) -> str:
    return "∞" if v is None else format(v, fmt)


def _ops_cell(ops: dict) -> str:
    total = sum(ops.values())
    named = [f"{k}×{v}" for k, v in ops.items() if k in _KEY_OPS]
    return f"{total}" + (f" ({', '.join(named)})" if named else "")


def to_markdown(report) -> str:
    lines = [
        f"# Conversion report: `{Path(report.model).name}` (x{report.scale})",
        "",
        f"- model sha256: `{report.model_sha256}`",
        f"- eval data: `{report.eval_data}`; calibration data: `{report.calib_data or '-'}`",
        f"- float Keras model: PSNR {report.float_psnr_db:.2f} dB, SSIM {report.float_ssim:.4f} (whole pictures)",
        f"- result: **{'all passed' if report.passed else 'FAILED'}**",
        "",
        "| format | file | size KiB | upsampler | input | ops | PSNR dB | SSIM | drop dB | vs float dB | max abs | gate | status |",
        "| --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for a in report.artifacts:
        if a.status == "error":
            lines.append(f"| {a.format} | - | - | - | - | - | - | - | - | - | - | - | **error** |")
            continue
        acc = a.accuracy or {}
        gate = acc.get("gate") or {}
        hw = (a.input_shape or [None, None, None])[1:3]
        shape = "dynamic" if None in hw else f"{hw[0]}x{hw[1]}"
        gate_cell = f"{gate.get('metric', '')} ≤ {gate.get('threshold', 0):g}"
        status = a.status if a.status == "passed" else f"**{a.status}**"
        lines.append(
            f"| {a.format} | `{a.file}` | {a.size_bytes / 1024:.1f} | {a.upsampler} | {shape} | {_ops_cell(a.ops)} "
            f"| {_num(acc.get('psnr_db'), '.2f')} | {_num(acc.get('ssim'), '.4f')} "
            f"| {_num(acc.get('psnr_drop_db'), '+.3f')} | {_num(acc.get('psnr_vs_float_db'), '.1f')} "
            f"| {_num(acc.get('max_abs_error'), '.2e')} | {gate_cell} | {status} |")
    notes = [(a.format, n) for a in report.artifacts for n in a.notes]
    errors = [(a.format, a.error) for a in report.artifacts if a.error]
    failed = [a for a in report.artifacts if a.status == "failed"]
    if failed or errors or notes:
        lines.append("")
    for a in failed:
        g = a.accuracy["gate"]
        by = "∞" if g["value"] is None else f"{g['value'] - g['threshold']:.3g}"
        lines.append(f"- **{a.format} failed**: {g['metric']} = {_num(g['value'], '.4g')} exceeds {g['threshold']:g} "
                     f"by {by}" + (" (the previous passing artifact was kept; the new one is "
                                   f"`{a.file}`)" if a.kept_previous else ""))
    for fmt, err in errors:
        lines.append(f"- **{fmt} error**: {err}")
    for fmt, note in notes:
        lines.append(f"- {fmt}: {note}")
    lines.append("")
    lines.append("Drop = float PSNR − artifact PSNR on the same input (fixed-size artifacts: the same tiles); "
                 "PSNR/SSIM per ../shared/PROTOCOL.md (Y, 8-bit output, scale-pixel border shaved); "
                 "vs float and max abs on the unrounded 0..1 output.")
    return "\n".join(lines) + "\n"


def write_reports(report, out_dir: Path) -> None:
    write_json_atomic(Path(out_dir) / "report.json", report.to_dict())
    write_text_atomic(Path(out_dir) / "report.md", to_markdown(report))
