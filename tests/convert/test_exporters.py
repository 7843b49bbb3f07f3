"""Every registered format: export → reload with the runtime backend → compare with Keras."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from convert.exporters import EXPORTERS, GATE_MAX_ABS

from .conftest import TEST_FIXED_HW


def _natural_lr(hw, name: str) -> np.ndarray:
    """A real picture's low-resolution luma crop (what calibration and the runtime see)."""
    import skimage.data as skd

    from convert.calibration import lr_luma
    from train.data import NamedImage

    lr = lr_luma(NamedImage(name, getattr(skd, name)()), 2)
    return np.ascontiguousarray(lr[100:100 + hw[0], 150:150 + hw[1]])[None, :, :, None]


@pytest.mark.parametrize("key", EXPORTERS.names())
def test_export_reload_matches_keras(key, tmp_path, tiny_x2, test_config, data):
    from convert.api import export_one
    from edge_runtime.backends import open_backend
    from edge_runtime.config import RuntimeConfig
    from edge_runtime.manifest import load_manifest

    exp = EXPORTERS.get(key)
    cfg = dataclasses.replace(test_config, input_size_hw=TEST_FIXED_HW) if exp.static_shape else test_config
    path = export_one(tiny_x2, key, tmp_path, cfg, calib=[data.calib])
    assert path.name.endswith(exp.suffix)
    manifest, _ = load_manifest(path)
    assert (manifest.format, manifest.runtime, manifest.scale, manifest.status) == (key, exp.runtime, 2, "unchecked")
    assert manifest.upsampler == exp.default_upsampler
    # the litert backend runs Edge TPU files on the CPU when no Edge TPU runtime is installed
    backend_cfg = RuntimeConfig(backend="litert") if key == "edgetpu" else RuntimeConfig()
    backend = open_backend(path, backend_cfg)
    x = _natural_lr(TEST_FIXED_HW if exp.static_shape else (20, 28), "coffee")
    out = backend.run(x)
    ref = np.asarray(tiny_x2(x))
    assert out.shape == ref.shape
    err = float(np.max(np.abs(out - ref)))
    if exp.gate_metric == GATE_MAX_ABS:
        assert err <= 1e-4
    else:
        psnr = 10 * np.log10(1.0 / np.mean((out - ref) ** 2))
        assert psnr >= 35.0, f"{key}: {psnr:.1f} dB vs Keras (max abs {err:.3g})"


@pytest.mark.parametrize("key", [k for k in EXPORTERS.names() if EXPORTERS.get(k).runtime == "tflite"][:1] +
                         [k for k in EXPORTERS.names() if EXPORTERS.get(k).runtime == "onnx"][:1])
def test_embedded_metadata(key, tmp_path, tiny_x2, test_config):
    from convert import onnx_tools, tflite_tools
    from convert.api import export_one

    path = export_one(tiny_x2, key, tmp_path, test_config)
    meta = (tflite_tools.read_metadata(path.read_bytes()) if path.suffix == ".tflite"
            else onnx_tools.read_metadata(path))
    assert meta["scale"] == 2 and meta["schema_version"] == 1 and meta["format"] == key


def test_int8_io_option(tmp_path, tiny_x2, test_config):
    from convert.api import export_one
    from edge_runtime.manifest import load_manifest

    cfg = dataclasses.replace(test_config, options=(("tflite-int8", "io_dtype", "int8"),))
    manifest, _ = load_manifest(export_one(tiny_x2, "tflite-int8", tmp_path, cfg))
    assert manifest.input.dtype == "int8" and manifest.output.dtype == "int8"
    assert manifest.input.quantization is not None
    # Input and output on the 8-bit display grid (tflite_tools.pin_exact_grids / pin_output_range).
    assert abs(manifest.input.quantization.scale - 1 / 255) < 1e-9 and manifest.input.quantization.zero_point == -128


@pytest.mark.parametrize("key", [k for k in EXPORTERS.names() if EXPORTERS.get(k).runtime == "tflite" and EXPORTERS.get(k).full_integer])
def test_full_integer_input_on_display_grid(key, tmp_path, tiny_x2, test_config):
    """uint8 pixels reach the model unrounded, and the int8 upsampler form chosen is named in the report."""
    from convert.api import export_one
    from edge_runtime.manifest import load_manifest

    manifest, _ = load_manifest(export_one(tiny_x2, key, tmp_path, test_config))
    q = manifest.input.quantization
    assert manifest.input.dtype == "uint8" and abs(q.scale - 1 / 255) < 1e-9 and q.zero_point == 0
    assert any("int8 upsampler" in n for n in manifest.to_dict().get("notes", []))


def test_fixed_size_and_batch(tmp_path, tiny_x2, test_config):
    from convert.api import export_one
    from edge_runtime.backends import open_backend

    cfg = dataclasses.replace(test_config, input_size_hw=(16, 24), batch=None)
    backend = open_backend(export_one(tiny_x2, "tflite-fp32", tmp_path, cfg))
    assert backend.manifest.input.shape == (None, 16, 24, 1)
    x = np.random.default_rng(0).random((3, 16, 24, 1)).astype(np.float32)
    assert np.max(np.abs(backend.run(x) - np.asarray(tiny_x2(x)))) <= 1e-4


def test_onnx_int8_lists_float_nodes(tmp_path, tiny_x2, test_config):
    from convert.api import export_one

    path = export_one(tiny_x2, "onnx-int8", tmp_path, test_config)
    manifest = json.loads((tmp_path / (path.name + ".json")).read_text())
    assert isinstance(manifest["float_nodes"], list)
    assert manifest["ops"].get("QuantizeLinear", 0) > 0


def test_edgetpu_compiler_log_parser():
    from convert.exporters.edgetpu import parse_compiler_log

    log = """Edge TPU Compiler version 16.0.384591198
Model compiled successfully in 105 ms.
Number of operations that will run on Edge TPU: 18
Number of operations that will run on CPU: 1

Operator                       Count      Status

CONV_2D                        9          Mapped to Edge TPU
PRELU                          8          Mapped to Edge TPU
TRANSPOSE_CONV                 1          Operation version not supported
"""
    rows = parse_compiler_log(log)
    assert [(r["op"], r["count"], r["mapped"]) for r in rows] == [
        ("CONV_2D", 9, True), ("PRELU", 8, True), ("TRANSPOSE_CONV", 1, False)]


@pytest.mark.parametrize("hw", [(7, 9), (16, 16), (40, 23)])
def test_tiled_run_matches_whole(hw):
    """Halo tiling reproduces whole-picture inference of a model with a small receptive field."""
    from convert.check import run_tiled

    lr = np.random.default_rng(0).random(hw).astype(np.float32)

    def box3(x):  # 3x3 mean, x2 nearest: receptive radius 1
        p = np.pad(x[0, :, :, 0], 1, mode="constant")
        m = sum(p[i:i + x.shape[1], j:j + x.shape[2]] for i in range(3) for j in range(3)) / 9
        return np.repeat(np.repeat(m, 2, 0), 2, 1)[None, :, :, None]

    whole = run_tiled(box3, lr, None, 2)
    tiled = run_tiled(box3, lr, (12, 10), 2, halo=2)
    h, w = hw
    assert tiled.shape == whole.shape == (2 * h, 2 * w)
    if h >= 12 and w >= 10:  # (smaller pictures are edge-padded, so their borders differ by design)
        assert np.max(np.abs(tiled - whole)) < 1e-6
