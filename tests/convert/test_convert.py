"""The whole ``convert`` run: manifests, report, the accuracy gate, atomic writes, error paths."""

from __future__ import annotations

import dataclasses
import json

import pytest

from convert.exporters import EXPORTERS
from edge_runtime.cli import main
from edge_runtime.fsutil import sha256_file

from .conftest import SHARED


def test_every_format_written_with_manifest(converted, data):
    from edge_runtime.manifest import load_manifest, verify_artifact

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
    from convert.api import convert
    from edge_runtime.manifest import load_manifest

    lenient = dataclasses.replace(test_config, max_psnr_drop_db=3.0)
    first = convert(data.model_x2, "tflite-int8", [str(data.calib)], [str(data.eval)], tmp_path, lenient)
    assert first.passed
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
    from convert.api import convert

    model_path = tmp_path / "tiny.keras"
    tiny_x2.save(str(model_path))
    report = convert(model_path, "tflite-fp32", None, [str(set5)], tmp_path / "out", test_config)
    row = report.artifacts[0]
    assert row.status == "passed" and abs(row.accuracy["psnr_db"] - report.float_psnr_db) < 1e-3
