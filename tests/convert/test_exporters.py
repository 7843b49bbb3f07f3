"""Every registered format: export → reload with the runtime backend → compare with Keras."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from deconv_edge_convert.exporters import EXPORTERS, GATE_MAX_ABS

from .conftest import TEST_FIXED_HW


def _natural_lr(hw, name: str) -> np.ndarray:
    """A real picture's low-resolution luma crop (what calibration and the runtime see)."""
    import skimage.data as skd

    from deconv_edge_convert.calibration import lr_luma
    from deconv_edge_train.data import NamedImage

    lr = lr_luma(NamedImage(name, getattr(skd, name)()), 2)
    return np.ascontiguousarray(lr[100:100 + hw[0], 150:150 + hw[1]])[None, :, :, None]


@pytest.mark.parametrize("key", EXPORTERS.names())
def test_export_reload_matches_keras(key, tmp_path, tiny_x2, test_config, data):
    from deconv_edge_convert.api import export_one
    from deconv_edge_core.manifest import load_manifest
    from edge_runtime.inference.backends import open_backend
    from edge_runtime.inference.config import RuntimeConfig

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
    from deconv_edge_convert import onnx_tools, tflite_tools
    from deconv_edge_convert.api import export_one

    path = export_one(tiny_x2, key, tmp_path, test_config)
    meta = (tflite_tools.read_metadata(path.read_bytes()) if path.suffix == ".tflite"
            else onnx_tools.read_metadata(path))
    assert meta["scale"] == 2 and meta["schema_version"] == 1 and meta["format"] == key


def test_int8_io_option(tmp_path, tiny_x2, test_config):
    from deconv_edge_convert.api import export_one
    from deconv_edge_core.manifest import load_manifest

    cfg = dataclasses.replace(test_config, options=(("tflite-int8", "io_dtype", "int8"),))
    manifest, _ = load_manifest(export_one(tiny_x2, "tflite-int8", tmp_path, cfg))
    assert manifest.input.dtype == "int8" and manifest.output.dtype == "int8"
    assert manifest.input.quantization is not None
    # Input and output on the 8-bit display grid (tflite_tools.pin_exact_grids / pin_output_range).
    assert abs(manifest.input.quantization.scale - 1 / 255) < 1e-9 and manifest.input.quantization.zero_point == -128


@pytest.mark.parametrize("key", [k for k in EXPORTERS.names() if EXPORTERS.get(k).runtime == "tflite" and EXPORTERS.get(k).full_integer])
def test_full_integer_input_on_display_grid(key, tmp_path, tiny_x2, test_config):
    """uint8 pixels reach the model unrounded, and the int8 upsampler form chosen is named in the report."""
    from deconv_edge_convert.api import export_one
    from deconv_edge_core.manifest import load_manifest

    manifest, _ = load_manifest(export_one(tiny_x2, key, tmp_path, test_config))
    q = manifest.input.quantization
    assert manifest.input.dtype == "uint8" and abs(q.scale - 1 / 255) < 1e-9 and q.zero_point == 0
    assert any("int8 upsampler" in n for n in manifest.to_dict().get("notes", []))


def test_fixed_size_and_batch(tmp_path, tiny_x2, test_config):
    from deconv_edge_convert.api import export_one
    from edge_runtime.inference.backends import open_backend

    cfg = dataclasses.replace(test_config, input_size_hw=(16, 24), batch=None)
    backend = open_backend(export_one(tiny_x2, "tflite-fp32", tmp_path, cfg))
    assert backend.manifest.input.shape == (None, 16, 24, 1)
    x = np.random.default_rng(0).random((3, 16, 24, 1)).astype(np.float32)
    assert np.max(np.abs(backend.run(x) - np.asarray(tiny_x2(x)))) <= 1e-4


def test_onnx_int8_lists_float_nodes(tmp_path, tiny_x2, test_config):
    import onnx

    from deconv_edge_convert.api import export_one
    from deconv_edge_convert.onnx_tools import float_nodes

    path = export_one(tiny_x2, "onnx-int8", tmp_path, test_config)
    manifest = json.loads((tmp_path / (path.name + ".json")).read_text())
    proto = onnx.load(str(path))
    # The manifest lists exactly what the file holds: every compute node still fed by a float tensor.
    assert manifest["float_nodes"] == float_nodes(proto)
    nodes = {f"{n.name} ({n.op_type})" for n in proto.graph.node}
    assert set(manifest["float_nodes"]) <= nodes
    convs = [n for n in proto.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convs and not any(f"{n.name} ({n.op_type})" in manifest["float_nodes"] for n in convs)  # all quantized
    note = next(n for n in manifest["notes"] if "float" in n)
    assert (str(len(manifest["float_nodes"])) in note) if manifest["float_nodes"] else note.startswith("no compute")
    assert manifest["ops"].get("QuantizeLinear", 0) > 0


def test_float_nodes_finds_a_compute_node_off_the_int8_path():
    """A Conv fed by DequantizeLinear is quantized; a Relu fed by the Conv's float output is not."""
    from onnx import TensorProto, helper

    from deconv_edge_convert.onnx_tools import float_nodes

    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    nodes = [helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["x"], name="dq"),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
             helper.make_node("Relu", ["y"], ["out"], name="relu")]
    inits = [w, helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("xq", TensorProto.INT8, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 2, 2])], inits)
    assert float_nodes(helper.make_model(graph)) == ["relu (Relu)"]


def test_edgetpu_compiler_log_parser():
    from deconv_edge_convert.exporters.edgetpu import parse_compiler_log

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


def test_xnnpack_delegates_a_static_transpose_conv_only(tmp_path, tiny_x2, test_config):
    """Why the upsampler forms are compared static against static and dynamic against dynamic: with a dynamic
    input shape XNNPACK leaves TRANSPOSE_CONV on LiteRT's built-in kernel, with a static one it takes it."""
    from deconv_edge_convert.api import export_one
    from edge_runtime.bench.graph import tflite_coverage
    from edge_runtime.inference.backends import open_backend
    from edge_runtime.inference.config import RuntimeConfig

    left = {}
    for shape, size in (("static", TEST_FIXED_HW), ("dynamic", None)):
        cfg = dataclasses.replace(test_config, upsampler="deconv", input_size_hw=size, batch=1)
        backend = open_backend(export_one(tiny_x2, "tflite-fp32", tmp_path / shape, cfg), RuntimeConfig(backend="litert"))
        assert "TRANSPOSE_CONV" in backend.manifest.extra["ops"]
        backend.run(np.zeros((1, *TEST_FIXED_HW, 1), np.float32))
        left[shape] = tflite_coverage(backend.interpreter._get_ops_details(), "XNNPACK")["not_delegated"]
    assert "TRANSPOSE_CONV" not in left["static"]
    assert "TRANSPOSE_CONV" in left["dynamic"]


def _upscaling_graph(extra_axis: bool):
    """``lr`` (N, H, W, 1) → nearest ×2 (NHWC), optionally with tf2onnx's stray size-1 axis in front."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Resize", ["lr", "", "scales"], ["up"], mode="nearest")]
    inits = [numpy_helper.from_array(np.array([1, 2, 2, 1], np.float32), "scales")]
    if extra_axis:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis"))
        nodes.append(helper.make_node("Unsqueeze", ["up", "axis"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["up"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, None, None, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_stray_boundary_axis_is_reshaped_to_nhwc_with_values_in_place():
    """CI once got (1, 1, H·s, W·s, 1) from tf2onnx: the probe repairs it with a Reshape, values unchanged."""
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from deconv_edge_convert import onnx_tools

    good, bad = _upscaling_graph(False), _upscaling_graph(True)
    assert onnx_tools.probe_layout(good, (1, None, None, 1), 2) == []
    notes = onnx_tools.probe_layout(bad, (1, None, None, 1), 2)
    assert notes and "Reshape to NHWC" in notes[0]
    x = np.random.default_rng(0).random((1, 7, 5, 1), np.float32)
    ys = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"lr": x})[0]
          for m in (good, bad)]
    assert ys[1].shape == (1, 14, 10, 1)
    np.testing.assert_array_equal(ys[0], ys[1])
    assert [d.dim_value for d in bad.graph.output[0].type.tensor_type.shape.dim][0::3] == [1, 1]


def test_onnx_unrepairable_layout_is_refused():
    pytest.importorskip("onnxruntime")
    from onnx import helper

    from deconv_edge_convert import onnx_tools
    from deconv_edge_core.errors import UserError

    m = _upscaling_graph(False)
    m.graph.node[-1].CopyFrom(helper.make_node("Transpose", ["up"], ["y"], perm=[0, 2, 1, 3]))  # H and W swapped
    with pytest.raises(UserError, match="unexpected layout"):
        onnx_tools.probe_layout(m, (1, None, None, 1), 2)


def _with_stray_axis(proto):
    """Append tf2onnx's CI answer, an extra size-1 axis in front of H (``(1, 1, H·s, W·s, 1)``), to a real graph."""
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    out = g.output[0].name
    g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "stray_axis"))
    g.node.append(helper.make_node("Unsqueeze", [out, "stray_axis"], ["y_stray"], name="stray_unsqueeze"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("y_stray", TensorProto.FLOAT, None))
    return proto


@pytest.mark.parametrize("key", ["onnx-int8", "onnx-fp16"])
def test_onnx_variants_are_made_from_the_repaired_graph(tmp_path, tiny_x2, test_config, monkeypatch, key):
    """The layout repair runs before quantization, so the manifest describes the file CI ships (stop 17's failure:
    the Reshape's shape arithmetic appeared after ``float_nodes`` had been listed)."""
    import onnx

    from deconv_edge_convert import onnx_tools
    from deconv_edge_convert.api import export_one
    from edge_runtime.inference.backends import open_backend

    real = onnx_tools.convert
    monkeypatch.setattr(onnx_tools, "convert", lambda *a, **k: _with_stray_axis(real(*a, **k)))
    path = export_one(tiny_x2, key, tmp_path, test_config)
    manifest = json.loads((tmp_path / (path.name + ".json")).read_text())
    proto = onnx.load(str(path))
    assert any("Reshape to NHWC" in n for n in manifest["notes"])
    assert any(n.name == "nhwc_boundary_mul" for n in proto.graph.node)
    if key == "onnx-int8":
        assert manifest["float_nodes"] == onnx_tools.float_nodes(proto) == []  # shape arithmetic is not listed
    monkeypatch.setattr(onnx_tools, "convert", real)
    plain = export_one(tiny_x2, key, tmp_path / "plain", test_config)
    x = np.random.default_rng(0).random((1, 16, 24, 1)).astype(np.float32)
    y, y_plain = open_backend(path).run(x), open_backend(plain).run(x)
    assert y.shape == y_plain.shape == (1, 32, 48, 1)
    # Same calibration, same values: the Reshape moved nothing.
    assert np.mean(np.abs(y - y_plain)) <= 1e-3
