"""The op versions our converter emits for the Edge TPU, pinned: a TensorFlow upgrade that emits a version the
Edge TPU compiler 16 refuses (TRANSPOSE_CONV 4: google-coral/edgetpu#845) fails here, not on a Coral."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from .conftest import TEST_FIXED_HW

REPO = Path(__file__).resolve().parents[2]
#: What TensorFlow 2.21's converter emits for our FSRCNN Edge TPU graphs (deconv upsampler), op by op.
PINNED = {"ADD": [2], "CONV_2D": [3], "QUANTIZE": [1], "TRANSPOSE_CONV": [3]}
#: Any shipped Edge TPU file: SESR's nearest-anchor upsampler also joins features and remainder in one
#: CONCATENATION (version 2 is its int8 kernel, as ADD 2 and CONV_2D 3 are theirs).
PINNED_ANY = {**PINNED, "CONCATENATION": [2]}


def test_version_limits_name_the_known_failure():
    from deconv_edge_convert.exporters.edgetpu import op_version_problems

    assert op_version_problems({"TRANSPOSE_CONV": [3], "CONV_2D": [3]}) == []
    problems = op_version_problems({"TRANSPOSE_CONV": [4]})
    assert len(problems) == 1 and "google-coral/edgetpu#845" in problems[0] and "version 4" in problems[0]


def test_shipped_edgetpu_artifacts_use_the_pinned_versions():
    from deconv_edge_convert import tflite_tools

    shipped = sorted((REPO / "edge_runtime" / "models").glob("*_edgetpu.tflite"))
    if not shipped:
        pytest.skip("no Edge TPU artifact shipped")
    for path in shipped:
        versions = tflite_tools.op_versions(path.read_bytes())
        assert set(versions) >= set(PINNED), path.name
        assert {op: PINNED_ANY.get(op) for op in versions} == versions, path.name


def test_export_records_and_checks_op_versions(tmp_path, tiny_x2, test_config, data):
    from deconv_edge_convert.api import export_one
    from deconv_edge_core.manifest import load_manifest

    cfg = dataclasses.replace(test_config, input_size_hw=TEST_FIXED_HW)
    path = export_one(tiny_x2, "edgetpu", tmp_path, cfg, calib=[data.calib])
    manifest, _ = load_manifest(path)
    info = manifest.extra["edgetpu"]
    assert info["static_checks"] == "passed"
    # The test model keeps FSRCNN-s's PReLU (the shipped ones use ReLU, fused into CONV_2D).
    assert info["op_versions"] == {**PINNED, "PRELU": [1]}, "the converter's op versions changed: check them against Edge TPU " \
                                          "compiler 16 before shipping (google-coral/edgetpu#845)"
    assert info["op_version_limits"] == {"TRANSPOSE_CONV": 3}
    assert any("op versions compiler 16 parses" in n for n in manifest.extra["notes"])


def test_export_refuses_a_version_the_compiler_rejects(tmp_path, tiny_x2, test_config, data, monkeypatch):
    from deconv_edge_convert import tflite_tools
    from deconv_edge_convert.api import export_one
    from deconv_edge_core.errors import UserError

    real = tflite_tools.op_versions
    monkeypatch.setattr(tflite_tools, "op_versions", lambda data: {**real(data), "TRANSPOSE_CONV": [4]})
    cfg = dataclasses.replace(test_config, input_size_hw=TEST_FIXED_HW)
    with pytest.raises(UserError, match="TRANSPOSE_CONV version 4"):
        export_one(tiny_x2, "edgetpu", tmp_path, cfg, calib=[data.calib])
