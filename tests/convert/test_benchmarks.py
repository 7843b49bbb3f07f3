"""The benchmark scripts' own logic: exit statuses, one run per table, like-with-like pairing, labels, the plot."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from benchmarks import report
from benchmarks.plot import plain_ticks, plot, tick_label
from benchmarks.upsampler_forms import pair_rows


def test_artifacts_exit_status_reports_a_failed_gate(monkeypatch, tmp_path):
    """benchmarks.artifacts computed "some gate failed" and returned 0; run_all.sh never heard of it."""
    import deconv_edge_convert.api as api
    from benchmarks import artifacts

    def fake_convert(model, formats, calib, gate, out, config, progress=None):
        out.mkdir(parents=True)
        return SimpleNamespace(passed=config.upsampler != "deconv")

    monkeypatch.setattr(api, "convert", fake_convert)
    assert artifacts.main(["--model", "m.keras", "--out", str(tmp_path / "a")]) == 1
    assert artifacts.main(["--model", "m.keras", "--forms", "subpixel", "--out", str(tmp_path / "b")]) == 0


def _row(key, label, precision, group, ms, gmacs=None, frac=None, kind="artifact"):
    return {"key": key, "label": label, "precision": precision, "group": group, "kind": kind, "error": None,
            "frame": {"p50_ms": ms, "fps": 1000 / ms}, "macs_per_frame": 10 ** 9, "model_gmacs_per_s": gmacs,
            "fraction_of_limit": frac, "format": "tflite-int8" if precision == "int8" else "tflite-fp32"}


def _speed(run_id="r1"):
    g = report.PLOT_GROUP
    return {"run_id": run_id, "scale": 2, "runs": 3, "warmup": 1, "command": "speed", "created": "t",
            "device": {"load_avg_1m": 3.0, "cores_usable": 2, "versions": {}}, "device_short": "cpu",
            "cpu_kind": "CPU (AVX2)", "warnings": [], "notes": [],
            "rows": [_row("ours:tflite-int8:subpixel:x2", "tflite-int8 subpixel", "int8", g, 20.0, 50.0, 0.25),
                     _row("ours:tflite-fp32:subpixel:x2", "tflite-fp32 subpixel", "fp32", g, 60.0, 17.0, 0.4),
                     _row("peer:FSRCNN:x2", "OpenCV FSRCNN (peer)", "fp32", g, 40.0, 15.0, 0.35, "peer"),
                     _row("ref:int8-conv", "int8 conv (reference)", "int8", g, 1.0, 200.0, None, "reference")]}


def _quality(run_id="r1"):
    return {"run_id": run_id, "scale": 2, "command": "quality", "created": "t", "peer": {"used": True}, "checks": [],
            "rows": [{"key": "ours:tflite-int8:subpixel:x2", "name": "tflite-int8 subpixel", "kind": "ours",
                      "set5": {"psnr_db": 36.8, "ssim": 0.95}},
                     {"key": "ours:tflite-fp32:subpixel:x2", "name": "tflite-fp32 subpixel", "kind": "ours",
                      "set5": {"psnr_db": 36.9, "ssim": 0.95}},
                     {"key": "peer:FSRCNN:x2", "name": "OpenCV FSRCNN (peer)", "kind": "peer",
                      "set5": {"psnr_db": 34.8, "ssim": 0.94}}]}


def test_report_refuses_results_of_two_runs(tmp_path):
    (tmp_path / "quality.json").write_text(json.dumps(_quality("r1")))
    (tmp_path / "speed.json").write_text(json.dumps(_speed("r2")))
    assert report.main(["--results", str(tmp_path)]) == 2
    old = _speed()
    del old["run_id"]  # results from before runs were named
    (tmp_path / "speed.json").write_text(json.dumps(old))
    assert report.main(["--results", str(tmp_path)]) == 2
    assert not (tmp_path / "summary.md").exists()


def test_report_labels_precision_and_gives_the_same_precision_row(tmp_path):
    (tmp_path / "quality.json").write_text(json.dumps(_quality()))
    (tmp_path / "speed.json").write_text(json.dumps(_speed()))
    assert report.main(["--results", str(tmp_path), "--command", "run_all"]) == 0
    md = (tmp_path / "summary.md").read_text()
    assert "0.50 (int8 vs fp32)" in md and "1.50 (fp32 vs fp32)" in md  # 20/40 and 60/40, precisions named
    assert "25.0 % of int8" in md  # the int8 file against the int8 reference, not the fp32 GEMM
    assert "ours fp32 ÷ peer fp32 (same precision)" in md and "60.00 / 40.00 = 1.50x" in md
    assert "run: `r1`" in md and "CPU (AVX2)" in md and "the machine was loaded" in md
    assert (tmp_path / "psnr_vs_latency.png").stat().st_size > 1000


def test_plot_ticks_are_plain_milliseconds(tmp_path):
    assert plain_ticks(3.0, 400.0) == [5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
    assert [tick_label(v) for v in (0.5, 2.0, 20.0, 200.0)] == ["0.5", "2", "20", "200"]
    labels = plot([(2, _quality(), _speed())], report.PLOT_GROUP, tmp_path / "p.png", "t")
    assert labels and labels[0] == ["20", "50"]
    assert not any("10^" in t or "×" in t or "$" in t for t in labels[0])


def test_upsampler_forms_are_compared_like_with_like():
    rows = [{"precision": p, "form": f, "shape": sh, "threads": 1, "frame_p50_ms": ms, "coverage": f"{sh} cov"}
            for p, f, sh, ms in (("int8", "deconv", "dynamic", 40.0), ("int8", "subpixel", "dynamic", 20.0),
                                 ("int8", "deconv", "static", 25.0), ("int8", "subpixel", "static", 20.0),
                                 ("fp32", "deconv", "static", 60.0))]
    pairs = pair_rows(rows)
    assert [(c["precision"], c["shape"]) for c in pairs] == [("int8", "static"), ("int8", "dynamic")]
    assert [c["ratio"] for c in pairs] == [pytest.approx(1.25), pytest.approx(2.0)]
    assert all(c["deconv_coverage"].startswith(c["shape"]) for c in pairs)  # never a static row's reason
