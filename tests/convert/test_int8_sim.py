"""The int8 emulation read from the file matches the interpreter: the ground truth a QAT step trains against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="reading flatbuffers needs TensorFlow (the [train] extra)")

MODELS = Path(__file__).resolve().parents[2] / "edge_runtime" / "models"
INT8_FILES = sorted(MODELS.glob("*_int8.tflite")) + sorted(MODELS.glob("*_edgetpu.tflite"))


@pytest.mark.parametrize("path", INT8_FILES, ids=lambda p: p.name)
def test_the_emulation_gives_the_interpreters_bytes(path):
    import json

    from ai_edge_litert.interpreter import Interpreter

    from deconv_edge_convert.int8_sim import Int8Graph

    data = path.read_bytes()
    interp = Interpreter(model_content=data)
    inp = interp.get_input_details()[0]
    shape = [1, 24, 32, int(inp["shape"][-1])]
    manifest = json.loads(Path(str(path) + ".json").read_text())
    fixed = manifest["input"]["shape"]
    if fixed[1] is not None:  # Edge TPU files: static shapes
        shape = [1, int(fixed[1]), int(fixed[2]), shape[-1]]
    x = np.random.default_rng(0).integers(0, 256, shape).astype(inp["dtype"])
    if shape[-1] == 2:
        x[..., 1] = round(25 / 255 / inp["quantization"][0]) + inp["quantization"][1]  # a denoiser's level map
    interp.resize_tensor_input(inp["index"], shape, strict=False)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    want = interp.get_tensor(interp.get_output_details()[0]["index"]).astype(np.int64)
    got = Int8Graph(data).run(x).astype(np.int64)
    assert got.shape == want.shape
    diff = np.abs(got - want)
    # Float64 against the kernels' fixed-point multipliers: a rare tie rounds the other way, and on this random
    # input it may carry a step or two further through the next layers, so nearly every byte is equal and none
    # is far. The x4 Edge TPU file's 16-tap deconvolution spreads one such step over more output pixels with larger
    # weights (max 4 there; each op alone matches to the byte but for ties, tested below).
    assert diff.max() <= 4 and (diff == 0).mean() >= 0.99, (diff.max(), (diff == 0).mean())


@pytest.mark.parametrize("path", INT8_FILES, ids=lambda p: p.name)
def test_each_emulated_op_gives_the_interpreters_bytes_from_the_same_inputs(path):
    """Op by op, fed the interpreter's own input tensors: only ties may differ, by one step."""
    import json

    fixed = json.loads(Path(str(path) + ".json").read_text())["input"]["shape"]
    _assert_each_op_matches(path.read_bytes(), (int(fixed[1] or 24), int(fixed[2] or 32)))


def _assert_each_op_matches(data: bytes, size_hw: tuple) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from deconv_edge_convert.int8_sim import Int8Graph

    interp = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    inp = interp.get_input_details()[0]
    shape = [1, *size_hw, int(inp["shape"][-1])]
    x = np.random.default_rng(0).integers(0, 256, shape).astype(inp["dtype"])
    interp.resize_tensor_input(inp["index"], shape, strict=False)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    graph = Int8Graph(data)
    constants = graph.constants()
    for op in graph.ops:
        values = {**constants, **{i: interp.get_tensor(i).astype(np.float64) for i in op.inputs
                                  if i >= 0 and i not in constants}}
        diff = np.abs(graph.run_op(op, values) - interp.get_tensor(op.outputs[0]).astype(np.float64))
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, (op.name, diff.max(), (diff == 0).mean())


def test_verify_on_pictures_is_within_two_hundredths_of_a_db():
    from deconv_edge_convert.int8_sim import verify
    from deconv_edge_train.data import builtin_images

    v = verify(MODELS / "fsrcnn_x2_int8.tflite", builtin_images(), 2)
    assert v.gap_db < 0.02 and v.identical_fraction > 0.99 and v.max_abs_diff <= 2


def test_an_unknown_op_is_refused_by_name(tmp_path):
    import tensorflow as tf

    from deconv_edge_convert.int8_sim import Int8Graph
    from deconv_edge_core.errors import UserError

    inp = tf.keras.Input((8, 8, 1))
    model = tf.keras.Model(inp, tf.keras.layers.AveragePooling2D(2)(inp))
    flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(UserError, match="does not know AVERAGE_POOL_2D"):
        Int8Graph(flat)


def _interpreter_bytes(flat, x):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flat)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape), strict=False)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    out = interp.get_output_details()[0]
    return interp.get_tensor(out["index"]).astype(np.int64), out["quantization"]


def _sr_cpu_int8_files() -> list:
    from deconv_edge_core.manifest import load_manifest

    return [p for p in sorted(MODELS.glob("*_int8.tflite")) if load_manifest(p)[0].task == "super-resolution"]


@pytest.mark.parametrize("path", _sr_cpu_int8_files(), ids=lambda p: p.name)
def test_qat_graph_is_the_file_and_writes_it_back(path):
    """The trainable graph gives the interpreter's bytes before any step, and written back untrained the file
    still gives them. The SESR files' refitted output conv has rows whose largest int8 weight is under 127:
    a grid recomputed as max/127 would differ from the file's there."""
    import tensorflow as tf

    from deconv_edge_convert.int8_qat import QatGraph
    from deconv_edge_convert.int8_sim import Int8Graph

    data = path.read_bytes()
    x = np.random.default_rng(1).integers(0, 256, (1, 20, 28, 1)).astype(np.uint8)
    want, (s_out, zp_out) = _interpreter_bytes(data, x)
    qat = QatGraph(Int8Graph(data))
    got = np.round(qat(tf.constant(x, tf.float32)).numpy() / s_out + zp_out).astype(np.int64)
    # The bounds of the end-to-end emulation test above (ties on random bytes).
    assert (got == want).mean() >= 0.99 and np.abs(got - want).max() <= 2
    again, _ = _interpreter_bytes(qat.write(data), x)
    assert (again == want).mean() >= 0.99 and np.abs(again - want).max() <= 2


def test_qat_fine_tune_writes_a_file_the_emulation_still_matches():
    """A short fine-tune writes a file the interpreter loads and the emulation still matches."""
    from deconv_edge_convert.int8_qat import QatConfig, fine_tune
    from deconv_edge_convert.int8_sim import Int8Graph
    from deconv_edge_train.data import PatchSampler, builtin_images

    data = (MODELS / "fsrcnn_x2_int8.tflite").read_bytes()
    x = np.random.default_rng(1).integers(0, 256, (1, 20, 28, 1)).astype(np.uint8)
    interpreter_bytes = _interpreter_bytes
    sampler = PatchSampler(builtin_images(), 2, 16, 4, jitter=(1.0,), seed=0)
    for learn_scales in (False, True):
        tuned = fine_tune(data, sampler, QatConfig(steps=3, learning_rate=1e-4, learn_scales=learn_scales,
                                                   scale_learning_rate=5e-2))
        after, _ = interpreter_bytes(tuned, x)
        sim = Int8Graph(tuned).run(x).astype(np.int64)
        # End to end on random bytes a tie may carry a step through later layers (as above); op by op, the
        # written file must match the emulation to the byte but for ties.
        assert np.abs(sim - after).max() <= 2 and (sim == after).mean() >= 0.97, learn_scales
        _assert_each_op_matches(tuned, (20, 28))
    # With learned grids the activation scales in the file moved (and the biases' scales with them).
    old = [t.scale[0] for t in Int8Graph(data).tensors if t.data is None and t.scale.size]
    new = [t.scale[0] for t in Int8Graph(tuned).tensors if t.data is None and t.scale.size]
    assert old != new
