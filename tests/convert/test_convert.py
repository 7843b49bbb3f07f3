"""The whole ``convert`` run: manifests, report, the accuracy gate, atomic writes, error paths."""

from __future__ import annotations

import dataclasses
import json

import pytest

from deconv_edge_convert.exporters import EXPORTERS
from deconv_edge_core.fsutil import sha256_file
from edge_runtime.cli import main

from .conftest import SHARED


def test_every_format_written_with_manifest(converted, data):
    from deconv_edge_core.manifest import load_manifest, verify_artifact

    out, report = converted
    assert [a.format for a in report.artifacts] == EXPORTERS.names()
    assert report.passed, [(a.format, a.status, a.error) for a in report.artifacts]
    model_sha = sha256_file(data.model_x2)
    for row in report.artifacts:
        path = out / row.file
        manifest, artifact = load_manifest(path)
        verify_artifact(manifest, artifact)  # sha256 right
        assert manifest.artifact["sha256"] == sha256_file(path)
        assert manifest.artifact["size_bytes"] == path.stat().st_size
        assert manifest.status == "passed" and manifest.format == row.format
        assert manifest.source_model["sha256"] == model_sha
        assert manifest.source_model["config"]["d"] == 8
        assert manifest.tools["tensorflow"] and manifest.created
        acc = manifest.accuracy
        for key in ("psnr_db", "ssim", "psnr_drop_db", "max_abs_error", "gate"):
            assert key in acc
        assert acc["gate"]["passed"] is True
        if manifest.input.dtype in ("uint8", "int8"):
            assert manifest.input.quantization and manifest.output.quantization
    # nothing half-written left behind
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_report_files(converted):
    out, report = converted
    saved = json.loads((out / "report.json").read_text())
    assert saved["passed"] is True and len(saved["artifacts"]) == len(EXPORTERS)
    md = (out / "report.md").read_text()
    for key in EXPORTERS:
        assert f"| {key} |" in md


def test_gate_fires_and_keeps_good_artifact(tmp_path, data, test_config):
    """``max_psnr_drop_db=0`` fails int8; the failing file never replaces the passing one."""
    from deconv_edge_convert.api import convert
    from deconv_edge_core.manifest import load_manifest

    lenient = dataclasses.replace(test_config, max_psnr_drop_db=3.0)
    stages: list = []
    first = convert(data.model_x2, "tflite-int8", [str(data.calib)], [str(data.eval)], tmp_path, lenient,
                    stage=stages.append)
    assert first.passed
    # Live feedback per artifact and stage (the CLI shows it on a terminal): calibration, conversion, gate.
    steps = [m.split(": ", 1)[1] for m in stages]
    assert all(m.startswith("[1/1] tflite-int8: ") for m in stages)
    assert steps[0] == "calibration pictures" and steps[1] == "conversion (calibrating)"
    assert steps[-1].startswith("gate on ") and steps.index(steps[-1]) > 1
    good = tmp_path / first.artifacts[0].file
    good_sha = sha256_file(good)

    strict = dataclasses.replace(test_config, max_psnr_drop_db=0.0, seed=1)
    second = convert(data.model_x2, "tflite-int8", [str(data.calib)], [str(data.eval)], tmp_path, strict)
    row = second.artifacts[0]
    assert not second.passed and row.status == "failed" and row.kept_previous
    assert row.accuracy["psnr_drop_db"] > 0 and row.accuracy["gate"]["passed"] is False
    assert sha256_file(good) == good_sha and load_manifest(good)[0].status == "passed"
    rejected, _ = load_manifest(tmp_path / row.file)
    assert rejected.status == "failed" and ".rejected" in row.file
    assert "**tflite-int8 failed**" in (tmp_path / "report.md").read_text()


def test_cli_gate_exit_code(tmp_path, data, capsys):
    rc = main(["convert", str(data.model_x2), "--formats", "tflite-int8", "--calib", str(data.calib), "--eval",
               str(data.eval), "--out", str(tmp_path), "--max-psnr-drop", "0", "--calib-samples", "100"])
    err = capsys.readouterr().err
    assert rc == 1 and "tflite-int8" in err
    manifest = json.loads(next(tmp_path.glob("*_int8.tflite.json")).read_text())
    assert manifest["status"] == "failed" and manifest["calibration"]["samples"] == 100


def test_help_lists_formats(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["convert", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for key in EXPORTERS:
        assert key in out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:")
    return err


@pytest.mark.parametrize("case", ["missing", "corrupt", "format", "size", "eval", "calib", "option", "samples",
                                  "out"])
def test_bad_input_one_line(case, tmp_path, data, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    corrupt = tmp_path / "bad.keras"
    corrupt.write_bytes(b"not a zip")
    model = {"missing": str(tmp_path / "nope.keras"), "corrupt": str(corrupt)}.get(case, str(data.model_x2))
    args = ["convert", model, "--formats", "tflite-int8", "--calib", str(data.calib), "--eval", str(data.eval),
            "--out", str(tmp_path / "out")]
    extra = {"format": ["--formats", "tflite-int9"], "size": ["--input-size", "240by320"],
             "eval": ["--eval", str(empty)], "calib": ["--calib", str(empty)],
             "option": ["--option", "tflite-int8.io_dtype=int4"], "samples": ["--calib-samples", "10"],
             "out": ["--out", str(corrupt)]}.get(case, [])
    if case in ("eval", "calib"):
        i = args.index(f"--{case}")
        args[i + 1] = str(empty)
    else:
        args += extra
    rc = main(args)
    line = _error_line(capsys)
    assert rc == 2
    if case == "format":
        assert "tflite-fp32" in line and "onnx-int8" in line  # lists the valid formats
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.tflite"))


@pytest.mark.shared
def test_shared_eval_set(tmp_path, tiny_x2, test_config):
    """The float artifact reproduces the Keras PSNR on Set5 (needs ../shared)."""
    set5 = SHARED / "data" / "sr" / "eval" / "set5"
    if not set5.is_dir():
        pytest.skip(f"needs {set5} (../shared is not mounted)")
    from deconv_edge_convert.api import convert

    model_path = tmp_path / "tiny.keras"
    tiny_x2.save(str(model_path))
    report = convert(model_path, "tflite-fp32", None, [str(set5)], tmp_path / "out", test_config)
    row = report.artifacts[0]
    assert row.status == "passed" and abs(row.accuracy["psnr_db"] - report.float_psnr_db) < 1e-3


def test_benchmark_converts_then_measures_each_artifact(tmp_path, data, capsys):
    """``deconv-edge benchmark``: export + gate + latency here, one row per artifact."""
    rc = main(["benchmark", str(data.model_x2), "--formats", "tflite-fp32,onnx-fp32", "--eval", str(data.eval),
               "--out", str(tmp_path), "--runs", "2", "--warmup", "0", "--input-size", "24x32"])
    out = capsys.readouterr().out
    assert rc == 0, out
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    rows = {r["format"]: r for r in saved["rows"]}
    assert set(rows) == {"tflite-fp32", "onnx-fp32"}
    report = json.loads((tmp_path / "report.json").read_text())
    for a in report["artifacts"]:
        row = rows[a["format"]]
        assert row["status"] == "passed" and row["frame_p50_ms"] > 0 and row["psnr_db"] == a["accuracy"]["psnr_db"]
        table = out.split("\nformat ", 1)[1].splitlines()  # the table comes after convert's own lines
        line = next(ln for ln in table if ln.startswith(a["format"] + " "))
        assert a["file"] in line and f"{row['frame_p50_ms']:.2f}" in line and f"{row['psnr_db']:.2f}" in line


def test_edgetpu_manifest_says_what_was_checked(converted):
    """An uncompiled Edge TPU file says so, lists what was checked, and where its gate really ran."""
    import shutil

    from deconv_edge_convert.exporters.edgetpu import COMPILER, STATIC_CHECKS
    from deconv_edge_core.manifest import load_manifest
    from edge_runtime.inference.backends.edgetpu import load_error

    out, report = converted
    (row,) = [a for a in report.artifacts if a.format == "edgetpu"]
    manifest, _ = load_manifest(out / row.file)
    info = manifest.extra["edgetpu"]
    assert info["compiled"] is (shutil.which(COMPILER) is not None)
    assert info["checked"][:len(STATIC_CHECKS)] == list(STATIC_CHECKS)
    assert info["op_versions"] and all(v and all(isinstance(n, int) for n in v) for v in info["op_versions"].values())
    if load_error():  # no Edge TPU here: the gate ran on the CPU, and the manifest must say so
        assert "CPU fallback" in manifest.accuracy["backend"] and info["gate_backend"] == manifest.accuracy["backend"]


def test_gate_records_the_cpu_fallback(converted, monkeypatch):
    """open_backend prints its fallback warning to stderr; the gate reads it from the backend instead."""
    from deconv_edge_convert.check import open_for_gate
    from edge_runtime.inference.backends import BACKENDS, edgetpu  # noqa: F401

    out, report = converted
    (row,) = [a for a in report.artifacts if a.format == "edgetpu"]
    monkeypatch.setattr(BACKENDS.get("edgetpu"), "available", classmethod(lambda cls: "no Edge TPU (test)"))
    enhancer, desc = open_for_gate(out / row.file, threads=1)
    backend = enhancer.backend
    assert backend.name == "litert" and backend.fallback and "no Edge TPU (test)" in backend.fallback
    assert desc == "litert (Edge TPU runtime not found: CPU fallback)"


def test_the_gate_runs_the_runtime_tiler(tmp_path, data, test_config, monkeypatch):
    """One tiler: the gate cuts a fixed-size artifact's pictures with the Enhancer's own tiler (its tiles, halo
    and batches), and the float reference goes through the very same tiling."""
    import edge_runtime.inference.enhance as enhance
    from deconv_edge_convert.api import export_one
    from deconv_edge_convert.calibration import load_images
    from deconv_edge_convert.check import EvalSet, Gate, check_artifact, gate_halo
    from deconv_edge_train.evaluate import load_keras_model
    from edge_runtime.inference.tiling import tile_spans

    model = load_keras_model(data.model_x2)
    tile = (16, 20)  # the eval pictures' 32x32 LR planes take several tiles, in batches
    artifact = export_one(model, "tflite-fp32", tmp_path, dataclasses.replace(test_config, input_size_hw=tile,
                                                                               batch=None))
    calls = []
    real = enhance.run_tiled

    def spy(run, y, tile_hw, halo, scale, max_batch=1, **kw):
        calls.append((getattr(run, "__self__", None), tuple(tile_hw), halo, max_batch, y.shape))
        return real(run, y, tile_hw, halo, scale, max_batch, **kw)

    monkeypatch.setattr(enhance, "run_tiled", spy)
    eval_set = EvalSet.from_images(load_images([str(data.eval)], "eval"), 2)
    acc = check_artifact(artifact, model, eval_set, Gate("max_abs_error", 1e-4))
    assert tuple(acc.tile_hw) == tile and acc.halo == gate_halo(tile) == 3
    artifact_calls = [c for c in calls if hasattr(c[0], "stats")]  # a backend's own run
    reference_calls = [c for c in calls if not hasattr(c[0], "stats")]
    assert len(artifact_calls) == len(reference_calls) == len(eval_set.pictures)
    for a, r in zip(artifact_calls, reference_calls):
        assert a[1:] == r[1:]  # same tiles, halo, batch size and picture
        assert a[3] > 1 and len(tile_spans(a[4][0], tile[0], acc.halo)) > 1
    # Same tiling on both sides: the fp32 file matches float to rounding, seams included.
    assert acc.passed and acc.max_abs_error <= 1e-4


def test_the_model_config_is_read_from_the_file(tmp_path):
    """convert takes the ModelConfig training stored in the .keras file; only older files fall back to
    reading layer names, and the manifest says which it was."""
    from deconv_edge_convert.manifest import describe_model
    from deconv_edge_train.evaluate import load_keras_model
    from deconv_edge_train.models import ModelConfig, build_model
    from deconv_edge_train.models.stored import save_model

    # SESR's layers do not spell out its config (its expansion is no layer's filter count): only storing it works.
    cfg = ModelConfig(name="sesr-s", scale=2, d=8, s=12, m=1, activation="relu")
    save_model(build_model(cfg), tmp_path / "stored.keras", cfg)
    stored = describe_model(load_keras_model(tmp_path / "stored.keras"), tmp_path / "stored.keras")
    assert stored.config == cfg.to_dict() and stored.config_source == "stored"
    assert stored.to_dict()["config_source"] == "stored"
    build_model(cfg).save(str(tmp_path / "old.keras"))  # a file from before configs were stored
    old = describe_model(load_keras_model(tmp_path / "old.keras"), tmp_path / "old.keras")
    assert old.config_source == "layer names" and old.config["scale"] == 2
