"""Denoising through convert and the runtime: a tiny RED-Net with a noise-level input, gated and run.

The model is untrained except for small random weights on its residual layer, so the artifact differs from
its input and the noise-level channel changes what it does (an untrained RED-Net outputs its input exactly).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="converting needs TensorFlow (the [train] extra)")

FORMATS = ("tflite-fp32", "tflite-int8", "onnx-fp32", "edgetpu")


def _denoiser_names() -> list:
    from deconv_edge_train.models import names_for

    return names_for("denoise")


@pytest.fixture(scope="module", params=_denoiser_names())
def denoiser(tmp_path_factory, request) -> dict:
    import keras

    from deconv_edge_convert.api import ExportConfig, convert
    from deconv_edge_train.models import ModelConfig, build_model

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name=request.param, scale=1, noise_map=True, d=8, m=1))
    # The layer that writes the residual starts at zero (the identity); small random weights make it act.
    layer = next(la for la in model.layers[::-1] if la.trainable and la.get_weights()
                 and not np.any(la.get_weights()[0]))
    kernel, bias = layer.get_weights()
    layer.set_weights([np.random.default_rng(0).normal(0, 0.02, kernel.shape).astype(np.float32), bias])
    out = tmp_path_factory.mktemp("denoiser")
    model.save(out / f"{request.param}_tiny.keras")
    report = convert(out / f"{request.param}_tiny.keras", ",".join(FORMATS), ["builtin"], ["builtin"], out / "art",
                     ExportConfig(calib_samples=8))
    assert report.passed, [a.to_dict() for a in report.artifacts]
    files = {a.format: out / "art" / a.file for a in report.artifacts}
    return {"model": model, "files": files, "dir": out}


def test_manifests_say_denoise_scale_one_and_the_noise_level_input(denoiser):
    from deconv_edge_core.manifest import load_manifest

    for key, path in denoiser["files"].items():
        m, _ = load_manifest(path)
        # CPU formats get the decoder in sub-pixel form; the Edge TPU keeps TRANSPOSE_CONV (on its op list).
        assert (m.task, m.scale, m.upsampler) == ("denoise", 1, "deconv" if key == "edgetpu" else "subpixel"), key
        assert m.noise.level_input and m.noise.size_multiple == 4 and m.noise.sigma_range == (0.0, 50.0)
        assert m.input.shape[-1] == 2 and m.output.shape[-1] == 1 and m.color_space == "y-bt601-full"
        assert m.accuracy["gate"]["passed"]
        assert json.loads(Path(str(path) + ".json").read_text())["noise"]["model"] == "awgn"


def test_every_decoder_deconv_collapses_exactly_to_subpixel(denoiser):
    import keras

    from deconv_edge_convert.rewrite_decoder import rewrite_deconvs

    model = denoiser["model"]
    rewritten = rewrite_deconvs(model)
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in rewritten.layers)
    assert [n for n in ("up_2_d2s", "up_1_d2s") if n in [layer.name for layer in rewritten.layers]] == \
        ["up_2_d2s", "up_1_d2s"]
    x = np.random.default_rng(5).random((2, 36, 44, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(rewritten(x)), np.asarray(model(x)), atol=1e-5)
    assert rewrite_deconvs(rewritten) is rewritten  # nothing left to rewrite


def test_the_edgetpu_denoiser_has_static_shapes_and_transpose_conv(denoiser):
    from deconv_edge_core.manifest import load_manifest

    m, _ = load_manifest(denoiser["files"]["edgetpu"])
    assert m.input.shape == (1, 240, 320, 2)
    assert "TRANSPOSE_CONV" in m.extra["ops"]


def test_the_enhancer_denoises_at_scale_one_with_a_live_strength(denoiser):
    from deconv_edge_core.errors import UserError
    from edge_runtime.inference.enhance import Enhancer

    frame = (np.random.default_rng(1).random((61, 83, 3)) * 255).astype(np.uint8)  # sides not multiples of 4
    for key, path in denoiser["files"].items():
        e = Enhancer(path)
        assert (e.task, e.scale, e.strength) == ("denoise", 1, 25.0)
        out25 = e(frame)
        assert out25.shape == frame.shape and out25.dtype == np.uint8
        assert np.abs(out25.astype(int) - frame).mean() > 1.0, key  # it does something
        e.set_strength(5)
        out5 = e(frame)
        assert np.abs(out5.astype(int) - out25).mean() > 0.05, f"{key}: the strength changes nothing"
        assert e.describe()["strength"] == 5.0
        with pytest.raises(UserError, match="outside 0..50"):
            e.set_strength(80)
        np.testing.assert_array_equal(e.bicubic(frame), frame)  # --compare shows the frame as it came


def test_a_grey_frame_gets_the_float_models_grey_and_colour_keeps_its_chroma(denoiser):
    """Denoisers work on full-range luma (Pillow's grey, what they are trained on): a grey frame comes out as
    the float model's output (8-bit rounded), and a colour frame only has its luma changed."""
    from edge_runtime.inference.enhance import Enhancer

    grey = (np.random.default_rng(2).random((48, 64)) * 200 + 20).astype(np.uint8)
    x = np.stack([grey / 255.0, np.full(grey.shape, 15 / 255.0)], axis=-1)[None].astype(np.float32)
    want = np.clip(np.rint(np.asarray(denoiser["model"](x))[0, :, :, 0] * 255), 0, 255)
    for key in ("tflite-fp32", "tflite-int8"):
        e = Enhancer(denoiser["files"][key], strength=15)
        out = e(np.repeat(grey[:, :, None], 3, axis=2)).astype(np.float64)
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all(), "grey stays grey"
        assert np.abs(out[..., 0] - want).max() <= (1 if key == "tflite-fp32" else 24), key
    colour = (np.random.default_rng(3).random((48, 64, 3)) * 200 + 20).astype(np.uint8)
    out = Enhancer(denoiser["files"]["tflite-fp32"], chroma="keep")(colour).astype(np.float64)
    diff = out - colour
    assert np.abs(diff - diff.mean(axis=2, keepdims=True)).max() <= 1.0  # B, G, R moved together


def test_colour_frames_get_their_chroma_denoised_on_half_resolution_planes(denoiser):
    """``chroma=denoise`` (the default) runs the model on Y, then on Cr and Cb at half resolution, each with
    its own noise level: exactly what running those planes through the model by hand gives."""
    import cv2

    from edge_runtime.inference.chroma import CHROMA_STRENGTH
    from edge_runtime.inference.enhance import Enhancer

    colour = (np.random.default_rng(4).random((48, 64, 3)) * 200 + 20).astype(np.uint8)
    for key in ("tflite-int8", "onnx-fp32", "edgetpu"):
        e = Enhancer(denoiser["files"][key], strength=20)
        assert e.chroma == "denoise"
        e.stats.reset()
        out = e(colour)
        assert e.stats.total >= 3, key  # Y, then Cr and Cb
        y, cr, cb = cv2.split(cv2.cvtColor(colour, cv2.COLOR_BGR2YCrCb))
        planes = [e.denoise_plane(y, 20.0)]
        for plane, k in ((cr, CHROMA_STRENGTH["cr"]), (cb, CHROMA_STRENGTH["cb"])):
            small = e.denoise_plane(cv2.resize(plane, (32, 24), interpolation=cv2.INTER_AREA), 20.0 * k)
            planes.append(cv2.resize(small, (64, 48), interpolation=cv2.INTER_LINEAR))
        np.testing.assert_array_equal(out, cv2.cvtColor(cv2.merge(planes), cv2.COLOR_YCrCb2BGR), err_msg=key)
        kept = Enhancer(denoiser["files"][key], strength=20, chroma="keep")(colour)
        assert not np.array_equal(out, kept), key  # the chroma changed


def test_tiles_with_the_denoise_halo_match_the_whole_frame(denoiser):
    from edge_runtime.inference.enhance import Enhancer

    frame = (np.random.default_rng(3).random((150, 170, 3)) * 255).astype(np.uint8)
    path = denoiser["files"]["tflite-fp32"]
    whole = Enhancer(path)(frame)
    tiled = Enhancer(path, tile=(96, 112))
    # The halo covers the receptive radius recorded at convert time, on the 4-pixel stride grid.
    radius = tiled.manifest.receptive_radius_px
    assert radius is not None and tiled.halo >= radius and tiled.halo % 4 == 0 and tiled.halo >= 24
    np.testing.assert_array_equal(tiled(frame), whole)


def test_a_tile_off_the_stride_grid_is_refused(denoiser):
    from deconv_edge_core.errors import UserError
    from edge_runtime.inference.enhance import Enhancer

    with pytest.raises(UserError, match="multiples of 4"):
        Enhancer(denoiser["files"]["tflite-fp32"], tile=(98, 112))


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edge_runtime", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_task_and_strength_checks(denoiser, tmp_path):
    import cv2

    art = denoiser["files"]["tflite-int8"]
    pic = tmp_path / "noisy.png"
    cv2.imwrite(str(pic), (np.random.default_rng(4).random((40, 52, 3)) * 255).astype(np.uint8))
    r = _cli("enhance", pic, "-o", tmp_path / "out.png", "--model", art, "--strength", "10", "--task", "denoise")
    assert r.returncode == 0, r.stderr
    assert "denoise, strength 10, chroma denoise" in r.stdout
    assert cv2.imread(str(tmp_path / "out.png")).shape == (40, 52, 3)
    r = _cli("enhance", pic, "-o", tmp_path / "luma.png", "--model", art, "--strength", "10", "--chroma", "keep")
    assert r.returncode == 0 and "chroma keep" in r.stdout, r.stderr
    luma, both = cv2.imread(str(tmp_path / "luma.png")), cv2.imread(str(tmp_path / "out.png"))
    assert not np.array_equal(luma, both)
    r = _cli("enhance", pic, "-o", tmp_path / "sr.png", "--model", "x2", "--chroma", "denoise")
    assert r.returncode != 0 and "no noise-level input" in r.stderr and "Traceback" not in r.stderr
    r = _cli("enhance", pic, "-o", tmp_path / "z.png", "--model", art, "--chroma", "loud")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = _cli("enhance", pic, "-o", tmp_path / "x.png", "--model", art, "--task", "super-resolution")
    assert r.returncode != 0 and "is a denoise model, not super-resolution" in r.stderr
    assert "Traceback" not in r.stderr
    r = _cli("enhance", pic, "-o", tmp_path / "y.png", "--model", art, "--strength", "51")
    assert r.returncode != 0 and "outside 0..50" in r.stderr and "Traceback" not in r.stderr


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str, body: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body.encode(), method="POST"), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_preview_changes_the_strength_live(denoiser, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stats_json = tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime", "camera", "--source", "demo://?noise=25&fps=10",
                             "--model", str(denoiser["files"]["tflite-int8"]), "--sink", f"http://127.0.0.1:{port}",
                             "--compare", "--duration", "30", "--stats-json", str(stats_json)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        stats = {}
        while time.monotonic() < deadline:
            try:
                stats = _get(f"{base}/stats.json")
                if stats.get("frames"):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert stats.get("frames"), "the preview never served a frame"
        assert stats["task"] == "denoise" and stats["strength"] == 25.0 and stats["strength_range"] == [0.0, 50.0]
        assert b'id="strength"' in urllib.request.urlopen(base + "/", timeout=10).read()
        assert _post(f"{base}/control", "strength=7") == (200, '{"strength": 7.0}')
        assert _get(f"{base}/stats.json")["strength"] == 7.0
        code, text = _post(f"{base}/control", "strength=70")
        assert code == 400 and "outside 0..50" in text
        code, text = _post(f"{base}/control", "gain=2")
        assert code == 400 and "valid: strength" in text
        code, _ = _post(f"{base}/control", "strength=" + "9" * 400)
        assert code == 413
        assert _get(f"{base}/stats.json")["strength"] == 7.0
        chromium = shutil.which("chromium")
        if chromium:  # a real browser runs the page's script: the slider shows, at the strength in force
            dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                  "--disable-background-networking", "--no-first-run",
                                  f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", base + "/"],
                                 capture_output=True, text=True, timeout=120).stdout
            assert 'data-strength="7"' in dom and '<label id="strength-box">' in dom, dom[-2000:]
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(stats_json.read_text())["strength"] == 7.0


def test_a_denoiser_bundle_carries_references_and_checks_its_accuracy(denoiser, tmp_path):
    """``bundle`` makes reference outputs for a denoiser (noise-level map included) and ``verify --accuracy``
    matches them, as the device would."""
    arts = [denoiser["files"][k] for k in ("tflite-int8", "onnx-fp32")]
    out = tmp_path / "dn.tar.gz"
    r = _cli("bundle", *arts, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "no references" not in r.stdout + r.stderr
    r = _cli("verify", "--accuracy", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 artifact(s) match their references" in r.stdout
