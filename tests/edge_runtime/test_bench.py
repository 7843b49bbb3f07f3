"""``deconv-edge bench``: JSON with every field, interleaving and ratios, error paths. No test asserts a speed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from deconv_edge_core.errors import UserError
from edge_runtime.bench import runner as bench
from edge_runtime.bench.config import STAGES, BenchConfig, CaseSpec, parse_input_size, parse_threads
from edge_runtime.bench.fingerprint import DeviceInfo, device_fingerprint
from edge_runtime.bench.graph import tflite_conv_macs, tflite_coverage
from edge_runtime.bench.ipc import CaseError, SubprocessCase
from edge_runtime.bench.results import (
    CaseInfo,
    FinishInfo,
    GraphInfo,
    LatencyStats,
    LoadInfo,
    Samples,
    with_ratios,
)
from edge_runtime.bench.schedule import run_interleaved

RESULT_FIELDS = {
    "label", "kind", "group", "artifact", "format", "upsampler", "scale", "status", "backend", "runtime", "threads",
    "frame_hw", "model_input_shape", "artifact_size_bytes", "load_ms", "first_inference_ms", "first_frame_ms",
    "model", "frame", "stages", "calls_per_frame", "macs_per_call", "macs_per_frame", "macs_source",
    "model_gmacs_per_s", "precision", "limit_gmacs_per_s", "limit_case", "fraction_of_limit", "ops", "coverage", "peak_rss_mb", "baseline_rss_mb", "ratio_vs_first", "notes", "error",
    "samples_ms"}
STATS_FIELDS = {"n", "p50_ms", "p90_ms", "p99_ms", "min_ms", "mean_ms", "std_ms", "fps"}
DEVICE_FIELDS = {"cpu_model", "cpu_id", "isa", "machine", "cores_logical", "cores_usable", "cpu_max_mhz", "governor", "board_model", "os",
                 "python", "versions", "throttling", "throttled", "max_temp_c", "load_avg_1m", "hostname"}


# ---- parsing ----------------------------------------------------------------------------------------------
def test_parse_threads():
    assert parse_threads("1,2,4") == (1, 2, 4)
    assert parse_threads(" 2, 2 ,1") == (2, 1)
    for bad in ("0", "", "1,,x", "-1", "1.5", "999"):
        with pytest.raises(UserError):
            parse_threads(bad)


def test_parse_input_size():
    assert parse_input_size("240x320") == (240, 320)
    assert parse_input_size(" 48 X 64 ") == (48, 64)
    for bad in ("240", "240x", "x320", "0x320", "240x320x3", "axb", "99999x2"):
        with pytest.raises(UserError):
            parse_input_size(bad)


def test_config_rejects_bad_values():
    for kwargs in ({"threads": (0,)}, {"runs": 0}, {"warmup": -1}, {"input_hw": (0, 5)}):
        with pytest.raises(UserError):
            BenchConfig(artifacts=("a.tflite",), **kwargs)
    with pytest.raises(UserError):
        BenchConfig(artifacts=())


def test_latency_stats():
    s = LatencyStats.from_samples([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s.n, s.p50_ms, s.min_ms, s.mean_ms) == (5, 3.0, 1.0, 3.0)
    assert s.p50_ms <= s.p90_ms <= s.p99_ms <= 5.0
    assert s.fps == pytest.approx(1000.0 / 3.0)
    assert LatencyStats.from_samples([]) is None
    assert LatencyStats.from_samples([None, None]) is None


# ---- interleaving and ratios (in-process fake cases: no model needed) -------------------------------------
class FakeCase:
    """Records the global call order; latency ``ms`` per iteration; optionally fails at step ``fail_at``."""

    def __init__(self, label: str, ms: float, log: list, fail_at=None, fail_load=False):
        self.spec = CaseSpec(kind="fake", label=label)
        self.ms, self.log, self.fail_at, self.fail_load = ms, log, fail_at, fail_load
        self.steps = 0
        self.closed = False

    def start(self) -> LoadInfo:
        self.log.append(("load", self.spec.label))
        if self.fail_load:
            raise CaseError("cannot load")
        return LoadInfo(1.0, 2.0, 3.0, CaseInfo(format="fake", calls_per_frame=2))

    def step(self, n: int = 1) -> Samples:
        self.log.append(("step", self.spec.label))
        self.steps += 1
        if self.fail_at is not None and self.steps >= self.fail_at:
            raise CaseError("worker died")
        # Warm-up iterations are slower: they must not reach the statistics.
        ms = self.ms * (10 if self.steps <= 2 else 1)
        return Samples([ms], [2 * ms], {"invoke": [ms]})

    def finish(self) -> FinishInfo:
        self.log.append(("finish", self.spec.label))
        return FinishInfo(50.0, 40.0, GraphInfo(macs_per_call=1000, macs_source="fake"))

    def close(self) -> None:
        self.closed = True


def test_interleaved_order_warmup_and_ratios():
    log: list = []
    cases = [FakeCase("A", 10.0, log), FakeCase("B", 20.0, log), FakeCase("C", 5.0, log)]
    results = with_ratios(run_interleaved(cases, runs=4, warmup=2, group="g"))
    steps = [label for what, label in log if what == "step"]
    assert steps == ["A", "B", "C"] * 6  # A B C A B C …, warm-up rounds included
    assert [label for what, label in log if what == "load"] == ["A", "B", "C"]
    assert log.index(("load", "C")) < log.index(("step", "A"))  # all loaded before the first step
    a, b, c = results
    assert a.model.n == 4 and a.model.p50_ms == 10.0  # warm-up (10x slower) left out
    assert a.ratio_vs_first.model_p50 == 1.0 and a.ratio_vs_first.frame_p50 == 1.0
    assert b.ratio_vs_first.model_p50 == pytest.approx(2.0)
    assert c.ratio_vs_first.frame_p50 == pytest.approx(0.5)
    assert a.macs_per_frame == 2000 and a.model_gmacs_per_s == pytest.approx(1000 / 0.010 / 1e9)
    assert all(case.closed for case in cases)


def test_ratios_are_per_group():
    log: list = []
    g1 = run_interleaved([FakeCase("A", 10.0, log), FakeCase("B", 30.0, log)], runs=2, warmup=2, group="1 thread")
    g2 = run_interleaved([FakeCase("A", 5.0, log), FakeCase("B", 5.0, log)], runs=2, warmup=2, group="2 threads")
    results = with_ratios(g1 + g2)
    assert [r.ratio_vs_first.model_p50 for r in results] == [1.0, pytest.approx(3.0), 1.0, pytest.approx(1.0)]


def test_a_failing_case_does_not_stop_the_others():
    log: list = []
    cases = [FakeCase("A", 10.0, log), FakeCase("B", 10.0, log, fail_at=3), FakeCase("C", 10.0, log, fail_load=True)]
    a, b, c = with_ratios(run_interleaved(cases, runs=3, warmup=1))
    assert a.error is None and a.model.n == 3
    assert b.error == "worker died" and b.model.n == 1  # the sample before it died is kept
    assert c.error == "cannot load" and c.model is None and c.ratio_vs_first.model_p50 is None
    assert [label for what, label in log if what == "step"].count("C") == 0


def test_tflite_coverage_and_macs():
    # conv(0: t0 -> t2, weights t1) -> prelu(1: t2 -> t4) -> conv(2: t4 -> t6); one delegate owns nodes 0 and 2.
    ops = [
        {"index": 0, "op_name": "CONV_2D", "inputs": [0, 1], "outputs": [2]},
        {"index": 1, "op_name": "PRELU", "inputs": [2, 3], "outputs": [4]},
        {"index": 2, "op_name": "CONV_2D", "inputs": [4, 5], "outputs": [6]},
        {"index": 3, "op_name": "DELEGATE", "inputs": [0, 1], "outputs": [2]},
        {"index": 4, "op_name": "DELEGATE", "inputs": [4, 5], "outputs": [6]},
    ]
    cov = tflite_coverage(ops, "XNNPACK")
    assert (cov["ops_total"], cov["ops_delegated"], cov["partitions"]) == (3, 2, 2)
    assert cov["not_delegated"] == {"PRELU": 1}
    assert cov["summary"] == "XNNPACK 2/3 ops (not: PRELU x1)"
    assert tflite_coverage(ops[:3], "XNNPACK")["summary"].startswith("no delegate")
    assert tflite_conv_macs("CONV_2D", [[1, 8, 8, 1], [4, 3, 3, 1]], [1, 8, 8, 4]) == 64 * 4 * 9
    assert tflite_conv_macs("TRANSPOSE_CONV", [[4], [1, 9, 9, 5], [1, 8, 8, 5]], [1, 16, 16, 1]) == 320 * 81
    assert tflite_conv_macs("PRELU", [[1, 8, 8, 4]], [1, 8, 8, 4]) == 0


def test_device_fingerprint_and_warnings():
    d = device_fingerprint()
    assert set(d.to_dict()) == DEVICE_FIELDS
    assert d.cores_usable >= 1 and d.python and d.os
    base = dict(d.to_dict(), load_avg_1m=0.0, throttled=False, throttling=None)
    assert DeviceInfo(**dict(base, governor="performance")).warnings() == []
    assert "ondemand" in DeviceInfo(**dict(base, governor="ondemand")).warnings()[0]
    assert any("governor unknown" in w for w in DeviceInfo(**dict(base, governor=None)).warnings())
    throttled = DeviceInfo(**dict(base, governor="performance", throttled=True, throttling="x=0x4")).warnings()
    assert any("throttling" in w for w in throttled)


def test_worker_failure_is_reported_per_case(tmp_path):
    """A worker that cannot load its artifact answers with one line; the scheduler records it."""
    spec = CaseSpec(kind="artifact", label="missing", artifact=str(tmp_path / "missing.tflite"), input_hw=(8, 8))
    (result,) = run_interleaved([SubprocessCase(spec)], runs=1, warmup=0)
    assert result.error and "does not exist" in result.error
    assert result.model is None


# ---- the command, on real artifacts -----------------------------------------------------------------------
def _check_report(data: dict, n_results: int) -> None:
    assert data["schema"] == bench.SCHEMA
    assert {"schema", "created", "command", "config", "device", "warnings", "wall_s", "results"} <= set(data)
    assert set(data["device"]) == DEVICE_FIELDS
    assert len(data["results"]) == n_results
    for r in data["results"]:
        assert set(r) == RESULT_FIELDS, set(r) ^ RESULT_FIELDS
        assert r["error"] is None, r["error"]
        assert set(r["model"]) == STATS_FIELDS
        assert set(r["frame"]) == STATS_FIELDS
        assert r["model"]["n"] == data["config"]["runs"]
        assert r["load_ms"] is not None and r["first_inference_ms"] is not None and r["first_frame_ms"] is not None
        assert r["peak_rss_mb"] > 0 and r["peak_rss_mb"] >= r["baseline_rss_mb"]
        assert set(r["ratio_vs_first"]) == {"model_p50", "frame_p50"}


def test_bench_json_csv_md_have_every_field(any_model, tools, tmp_path):
    """Also: a relative artifact path from another working folder (the worker once ran in the checkout and
    answered "does not exist"), and MACs for the 8-bit frame path (which calls ``run_native``)."""
    work = tmp_path / "work"
    model = tools.copy_artifact(Path(any_model), work / "models")
    out = tmp_path / "b.json"
    res = tools.cli("bench", Path("models") / model.name, "--threads", "1", "--input-size", "48x64", "--runs", "3",
                    "--warmup", "1", "--bicubic", "--json", out, "--csv", tmp_path / "b.csv", "--md",
                    tmp_path / "b.md", "--quiet", cwd=work)
    assert res.returncode == 0, res.stderr
    assert "model p50" in res.stdout and "device:" in res.stdout
    data = json.loads(out.read_text())
    _check_report(data, 2)
    art, bic = data["results"]
    assert art["kind"] == "artifact" and art["artifact_size_bytes"] == model.stat().st_size
    assert Path(art["artifact"]).is_absolute() and Path(art["artifact"]) == model.resolve()
    assert set(art["stages"]) == set(STAGES)
    # One whole-frame call at 48x64: a frame path the counter misses gives calls_per_frame 0 and MACs 0 == x * 0.
    assert art["calls_per_frame"] == 1
    assert art["macs_per_call"] > 0 and art["macs_per_frame"] == art["macs_per_call"]
    assert art["precision"] == ("int8" if "int8" in art["format"] else "fp32")
    assert "0.0 M" not in res.stdout
    assert art["ops"] and art["runtime"]["backend"] in ("litert", "onnxruntime")
    assert art["ratio_vs_first"] == {"model_p50": 1.0, "frame_p50": 1.0}
    assert bic["kind"] == "bicubic" and bic["ratio_vs_first"]["frame_p50"] > 0
    rows = list(csv.DictReader((tmp_path / "b.csv").open()))
    assert len(rows) == 2 and {"model_p50_ms", "frame_p99_ms", "invoke_p50_ms", "peak_rss_mb", "macs_per_frame",
                               "ratio_frame_p50", "precision", "fraction_of_limit"} <= set(rows[0])
    md = (tmp_path / "b.md").read_text()
    assert "| case |" in md and "device:" in md


def test_bench_interleaves_artifacts_with_ratios(tf_artifacts, tmp_path):
    """Two artifacts (one tiled, fixed-shape) x two thread counts; ratios against the first of each group."""
    report = bench.run_bench(BenchConfig(artifacts=(str(tf_artifacts.dynamic), str(tf_artifacts.fixed)),
                                         threads=(1, 2), input_hw=(40, 56), runs=2, warmup=1))
    data = report.to_dict()
    _check_report(data, 4)
    groups = [r["group"] for r in data["results"]]
    assert groups == ["1 thread", "1 thread", "2 threads", "2 threads"]
    for first, second in (data["results"][0:2], data["results"][2:4]):
        assert first["ratio_vs_first"]["frame_p50"] == 1.0
        assert second["ratio_vs_first"]["frame_p50"] == pytest.approx(second["frame"]["p50_ms"] / first["frame"]["p50_ms"])
    fixed = data["results"][1]
    assert fixed["model_input_shape"][1:3] == [32, 48] and fixed["calls_per_frame"] >= 1  # tiles of the frame
    assert fixed["coverage"]["summary"]


@pytest.mark.parametrize("args, message", [
    (["does/not/exist.tflite"], "does not exist"),
    (["{model}", "--threads", "0"], "--threads"),
    (["{model}", "--threads", "two"], "--threads"),
    (["{model}", "--input-size", "240"], "--input-size"),
    (["{model}", "--input-size", "240x0"], "--input-size"),
    (["{model}", "--backend", "nosuch"], "unknown backend"),
    (["{model}", "--runs", "0"], "--runs"),
])
def test_bad_input_is_one_line_exit_2(args, message, tools, tmp_path):
    model = tmp_path / "m.tflite"  # bad options are rejected before the artifact is read
    model.write_bytes(b"x")
    res = tools.cli("bench", *[a.replace("{model}", str(model)) for a in args])
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_backend_not_installed_is_one_line_exit_2(any_model, monkeypatch, capsys):
    from edge_runtime import cli
    from edge_runtime.inference.backends import BACKENDS, onnxruntime  # noqa: F401

    monkeypatch.setattr(BACKENDS.get("onnxruntime"), "available", classmethod(lambda cls: "ONNX Runtime not installed"))
    assert cli.main(["bench", str(any_model), "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not usable here" in err[0] and "ONNX Runtime not installed" in err[0]


def test_wrong_backend_for_the_file_type(any_model, tools):
    other = "onnxruntime" if Path(any_model).suffix == ".tflite" else "litert"
    res = tools.cli("bench", any_model, "--backend", other)
    assert res.returncode == 2 and res.stderr.startswith("error:")
    assert "can run" in res.stderr or "not usable" in res.stderr  # the other runtime may be absent here


def test_protocol_reference_rows_are_parsed():
    """``benchmarks.quality`` takes bicubic, published and peer reference numbers from PROTOCOL.md's tables."""
    from benchmarks.quality import parse_protocol

    text = """
| scale | Set5 | Set14 |
| --- | --- | --- |
| x2 | 33.67 (33.66) | 30.33 (30.24) |

| model | params | Set5 x2 / x3 / x4 | Set14 x2 / x3 / x4 |
| --- | --- | --- | --- |
| FSRCNN (56,12,4) (Dong et al. 2016), deconvolution upsampler | 12k | 37.00 / 33.16 / 30.71 | 32.63 / 29.43 / 27.59 |

| peer | Set5 x2 / x3 / x4 | Set14 x2 / x3 / x4 |
| --- | --- | --- |
| FSRCNN-small | 34.49 / 30.17 / 28.14 | 30.95 / 27.53 / 25.94 |
"""
    ref = parse_protocol(text)
    assert ref["bicubic"] == {2: {"set5": 33.67, "set14": 30.33}}
    (name, entry), = ref["published"].items()
    assert name.startswith("FSRCNN (56,12,4)") and entry["set5"][2] == 37.0 and entry["set14"][4] == 27.59
    assert ref["peer"]["FSRCNN-small"]["set5"] == {2: 34.49, 3: 30.17, 4: 28.14}
