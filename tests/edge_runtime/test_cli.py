"""``deconv-edge enhance`` and ``doctor``, the default model, and one-line errors (real subprocesses)."""

from __future__ import annotations

import json

import cv2
import pytest

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import sha256_file
from edge_runtime.inference.default_model import DEFAULT_ARTIFACT, default_model

from .conftest import cli, copy_artifact, one_error_line, synthetic_frame, video_info


def test_enhance_picture_and_video(any_model, make_video, tmp_path):
    pic = tmp_path / "pic.png"
    cv2.imwrite(str(pic), synthetic_frame(40, 30))
    vid = make_video("clip.avi", frames=6, w=48, h=32)
    out = tmp_path / "out"
    r = cli("enhance", pic, vid, "-o", out, "--model", any_model)
    assert r.returncode == 0, r.stderr
    big = cv2.imread(str(out / "pic_x2.png"))
    assert big.shape == (60, 80, 3)
    assert video_info(out / "clip_x2.avi") == (6, 96, 64)
    assert "6 frames 48x32" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["clip_x2.avi", "pic_x2.png"]  # no temporary files left


def test_enhance_one_video_to_mp4(any_model, make_video, tmp_path):
    vid = make_video("clip.mp4", frames=5, w=32, h=24)
    out = tmp_path / "big.mp4"
    r = cli("enhance", vid, "-o", out, "--model", any_model, "--quiet")
    assert r.returncode == 0, r.stderr
    assert video_info(out) == (5, 64, 48)


def test_enhance_refuses_kind_mismatch(any_model, tmp_path):
    pic = tmp_path / "pic.png"
    cv2.imwrite(str(pic), synthetic_frame(16, 16))
    r = cli("enhance", pic, "-o", tmp_path / "out.mp4", "--model", any_model)
    assert r.returncode == 2
    assert "is a picture but the output" in one_error_line(r.stderr)


def test_missing_model_is_one_line(tmp_path):
    pic = tmp_path / "pic.png"
    cv2.imwrite(str(pic), synthetic_frame(16, 16))
    r = cli("enhance", pic, "-o", tmp_path / "o.png", "--model", tmp_path / "nope.tflite")
    assert r.returncode == 2
    assert "does not exist" in one_error_line(r.stderr)


def test_missing_input_is_one_line(any_model, tmp_path):
    r = cli("enhance", tmp_path / "nothing.png", "-o", tmp_path / "o.png", "--model", any_model)
    assert r.returncode == 2
    assert "does not exist" in one_error_line(r.stderr)


def test_tampered_artifact_is_one_line(any_model, tmp_path):
    art = copy_artifact(any_model, tmp_path / "m")
    data = bytearray(art.read_bytes())
    data[-10] ^= 0x55
    art.write_bytes(bytes(data))
    r = cli("camera", "--source", "demo://", "--sink", "null", "--max-frames", "1", "--model", art)
    assert r.returncode == 2
    assert "does not match its manifest" in one_error_line(r.stderr)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_corrupt_artifact_is_one_line(any_model, tmp_path, suffix):
    """Garbage with a manifest that matches it (hash fine, not a model): the loader's error, on one line."""
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime")
    art = tmp_path / f"bad{suffix}"
    art.write_bytes(b"this is not a model" * 50)
    manifest = json.loads(any_model.with_name(any_model.name + ".json").read_text())
    manifest.update(runtime="tflite" if suffix == ".tflite" else "onnx",
                    format="tflite-fp32" if suffix == ".tflite" else "onnx-fp32",
                    artifact={"file": art.name, "sha256": sha256_file(art), "size_bytes": art.stat().st_size})
    (tmp_path / f"bad{suffix}.json").write_text(json.dumps(manifest))
    pic = tmp_path / "pic.png"
    cv2.imwrite(str(pic), synthetic_frame(16, 16))
    r = cli("enhance", pic, "-o", tmp_path / "o.png", "--model", art)
    assert r.returncode == 2
    assert "cannot load" in one_error_line(r.stderr)


def test_bad_uris_are_one_line(tmp_path):
    for args, expected in [
        (("--source", "foo://x", "--sink", "null"), "unknown source scheme 'foo://'"),
        (("--source", "demo://", "--sink", "ftp://x"), "unknown sink scheme 'ftp://'"),
        (("--source", "demo://", "--sink", tmp_path / "out.xyz"), "cannot write video"),
        (("--source", "/dev/video9", "--sink", "null"), "not found"),
    ]:
        r = cli("camera", *args, "--max-frames", "1")
        assert r.returncode == 2, r.stderr
        assert expected in one_error_line(r.stderr)


def test_window_sink_needs_a_display(any_model):
    import os

    env_display = {k: v for k, v in os.environ.items() if k in ("DISPLAY", "WAYLAND_DISPLAY")}
    if env_display:
        pytest.skip("a display is set here")
    r = cli("camera", "--source", "demo://", "--sink", "window", "--max-frames", "1", "--model", any_model)
    assert r.returncode == 2
    assert "no display" in one_error_line(r.stderr)


def _fake_model(folder, name, fmt, scale=2):
    art = folder / name
    art.write_bytes(b"x")
    runtime = "onnx" if name.endswith(".onnx") else "tflite"
    spec = {"name": "lr", "dtype": "float32", "shape": [1, None, None, 1]}
    (folder / (name + ".json")).write_text(json.dumps({
        "schema_version": 1, "format": fmt, "runtime": runtime, "scale": scale, "input": spec, "output": spec,
        "upsampler": "deconv", "artifact": {"file": name, "sha256": "0" * 64}}))
    return art


def test_default_model_resolution(tmp_path):
    with pytest.raises(UserError, match="no default model shipped"):
        default_model(tmp_path)
    _fake_model(tmp_path, "a_x3.tflite", "tflite-int8", scale=3)
    _fake_model(tmp_path, "b_x2.tflite", "tflite-fp32")
    assert default_model(tmp_path).name == "b_x2.tflite"
    _fake_model(tmp_path, "c_x2.tflite", "tflite-int8")
    assert default_model(tmp_path).name == "c_x2.tflite"  # int8 preferred
    _fake_model(tmp_path, DEFAULT_ARTIFACT, "tflite-fp32")
    assert default_model(tmp_path).name == DEFAULT_ARTIFACT  # the named default wins


def test_doctor_describes_this_machine():
    r = cli("doctor")
    assert r.returncode in (0, 1), r.stderr
    for word in ("python", "numpy", "opencv", "litert", "edge tpu", "onnxruntime", "cameras", "display",
                 "cpu governor", "board", "default model"):
        assert word in r.stdout, r.stdout
