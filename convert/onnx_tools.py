"""Keras → ONNX (tf2onnx), graph clean-ups, fp16 and int8 (ONNX Runtime QDQ) variants, metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from deconv_edge_core.manifest import TensorSpec

#: ``metadata_props`` key holding the embedded manifest essentials (JSON).
METADATA_KEY = "deconv_edge"
MIN_OPSET = 17


def convert(model, input_shape: tuple, opset: int = MIN_OPSET):
    """Keras model → ``onnx.ModelProto`` (NHWC input named ``lr``), PReLU fused.

    Keras 3 models need an explicit input signature for tf2onnx (``from_keras`` trips over Keras 3's
    functional internals), so the model is traced as a ``tf.function``.
    """
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec(list(input_shape), tf.float32, name="lr")]
    fn = tf.function(lambda x: model(x, training=False), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=int(opset))
    fuse_prelu(proto)
    return proto


def _probe_shape(proto, h: int, w: int, channels: int = 1) -> tuple:
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.full((1, h, w, channels), 0.5, np.float32)
    return tuple(sess.run(None, {sess.get_inputs()[0].name: x})[0].shape)


def _reshape_output_to_nhwc(proto, scale: int) -> None:
    """Append ``Reshape(y, [N, H·s, W·s, 1])``, the target computed from the graph input's own shape."""
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    inp, out = g.input[0].name, g.output[0].name
    raw = f"{out}_unnormalised"
    for n in g.node:
        n.output[:] = [raw if o == out else o for o in n.output]
    pre = "nhwc_boundary"
    g.initializer.append(numpy_helper.from_array(np.array([scale, scale], np.int64), f"{pre}_scale"))
    g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), f"{pre}_channels"))
    g.node.extend([
        helper.make_node("Shape", [inp], [f"{pre}_n"], name=f"{pre}_shape_n", start=0, end=1),
        helper.make_node("Shape", [inp], [f"{pre}_hw"], name=f"{pre}_shape_hw", start=1, end=3),
        helper.make_node("Mul", [f"{pre}_hw", f"{pre}_scale"], [f"{pre}_hw_up"], name=f"{pre}_mul"),
        helper.make_node("Concat", [f"{pre}_n", f"{pre}_hw_up", f"{pre}_channels"], [f"{pre}_target"],
                         name=f"{pre}_concat", axis=0),
        helper.make_node("Reshape", [raw, f"{pre}_target"], [out], name=f"{pre}_reshape"),
    ])
    dims = [d.dim_value if d.HasField("dim_value") else None for d in g.input[0].type.tensor_type.shape.dim]
    dims = [dims[0], dims[1] * scale if dims[1] else None, dims[2] * scale if dims[2] else None, 1]
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, dims))


def probe_layout(proto, input_shape: tuple, scale: int) -> list[str]:
    """Run the graph once on a small input and insist on an NHWC ``(1, h·s, w·s, 1)`` output.

    tf2onnx moves NHWC ↔ NCHW at the graph boundary with Reshape/Squeeze tricks when C = 1. On some machines
    (CI, 2026-12-01; not reproduced on the development machine, nor under an emulated AVX2-only CPU) the same
    model converted with batch 1 answered ``(1, 1, h·s, w·s, 1)``: an extra size-1 axis. With one channel and
    the spatial axes in order, a Reshape to NHWC keeps every value where it is, so that case is repaired in the
    graph (and noted); the accuracy gate then checks the values. Any other layout is refused.

    Returns:
        Notes for the manifest (empty when the graph was already NHWC).

    Raises:
        UserError: the output has a layout that cannot be repaired by a Reshape.
    """
    from deconv_edge_core.errors import UserError

    # Unequal sides (a swap would show), multiples of 8 (stride-2 denoisers need multiples of 4).
    h = input_shape[1] or 16
    w = input_shape[2] or 24
    c = input_shape[3] or 1
    want = (1, h * scale, w * scale, 1)
    got = _probe_shape(proto, h, w, c)
    if got == want:
        return []
    if [d for d in got if d != 1] == [h * scale, w * scale]:
        _reshape_output_to_nhwc(proto, scale)
        fixed = _probe_shape(proto, h, w, c)
        if fixed == want:
            return [f"tf2onnx answered {got} for a {(1, h, w, c)} input; a Reshape to NHWC was appended"]
        got = fixed
    raise UserError(f"the ONNX graph answers {got} for a {(1, h, w, c)} input, expected {want} (NHWC); "
                    "tf2onnx produced an unexpected layout, convert again")


def _initializers(graph) -> dict:
    return {t.name: t for t in graph.initializer}


def fuse_prelu(proto) -> int:
    """Replace Keras 3's PReLU expansion ``Relu(x) + c·Relu(Neg(x))`` (``c = -alpha``) by one ``PRelu``.

    tf2onnx emits the expansion verbatim: five nodes per activation, none of which ONNX Runtime's
    quantizer treats as one activation. Returns the number of fusions.
    """
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = _initializers(g)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    remove, add = set(), []
    for node in g.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        a, b = (producer.get(i) for i in node.input)
        if a is None or b is None:
            continue
        if a.op_type == "Mul":
            a, b = b, a
        if a.op_type != "Relu" or b.op_type != "Mul":
            continue
        mul_in = [producer.get(i) for i in b.input]
        const = [i for i in b.input if i in inits]
        relu2 = next((p for p in mul_in if p is not None and p.op_type == "Relu"), None)
        if len(const) != 1 or relu2 is None:
            continue
        neg = producer.get(relu2.input[0])
        if neg is None or neg.op_type != "Neg" or neg.input[0] != a.input[0]:
            continue
        inner = [a, b, relu2, neg]
        # Only fuse when the inner values are used nowhere else.
        if any(len(consumers.get(o, [])) != 1 for n in inner for o in n.output if n is not a) or \
                len(consumers.get(a.output[0], [])) != 1:
            continue
        slope = -numpy_helper.to_array(inits[const[0]]).astype(np.float32)
        slope_name = f"{node.name}_prelu_slope"
        g.initializer.append(numpy_helper.from_array(slope, slope_name))
        add.append((node, helper.make_node("PRelu", [a.input[0], slope_name], [node.output[0]],
                                            name=f"{node.name}_prelu")))
        remove.update(id(n) for n in inner + [node])
    if not add:
        return 0
    new_nodes = []
    replacement = {id(old): new for old, new in add}
    for n in g.node:
        if id(n) in replacement:
            new_nodes.append(replacement[id(n)])
        elif id(n) not in remove:
            new_nodes.append(n)
    del g.node[:]
    g.node.extend(new_nodes)
    _drop_unused_initializers(g)
    return len(add)


def _drop_unused_initializers(g) -> None:
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def to_fp16(proto):
    """fp16 weights and activations with float32 graph inputs/outputs (a Cast at each end).

    Done here because onnxconverter-common (the usual tool) is not a dependency. Covers the ops tf2onnx
    emits for these models; anything exotic fails loudly in ONNX Runtime and the gate reports it.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g = m.graph
    for i, t in enumerate(list(g.initializer)):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for n in g.node:
        for attr in n.attribute:
            if n.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
    casts_in, casts_out = [], []
    for inp in g.input:
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = f"{inp.name}_fp16"
        for n in g.node:
            for k, name in enumerate(n.input):
                if name == inp.name:
                    n.input[k] = half
        casts_in.append(helper.make_node("Cast", [inp.name], [half], to=TensorProto.FLOAT16, name=f"{inp.name}_to_fp16"))
    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = f"{out.name}_fp16"
        for n in g.node:
            for k, name in enumerate(n.output):
                if name == out.name:
                    n.output[k] = half
        casts_out.append(helper.make_node("Cast", [half], [out.name], to=TensorProto.FLOAT, name=f"{out.name}_to_fp32"))
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # stale float32 annotations; ONNX Runtime re-infers
    onnx.checker.check_model(m)
    return m


def quantize_int8(proto, calib, work_dir: Path, per_channel: bool = True):
    """ONNX Runtime static quantization: QDQ format, int8 activations, per-channel int8 weights.

    Args:
        proto: float model.
        calib: a :class:`deconv_edge_convert.calibration.CalibrationSet`.
        work_dir: scratch folder (ONNX Runtime quantizes file to file).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, pre, dst = work_dir / "float.onnx", work_dir / "pre.onnx", work_dir / "int8.onnx"
    onnx.save(proto, str(src))
    # Shape inference + graph optimisation first, as ONNX Runtime's quantization guide asks.
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    input_name = proto.graph.input[0].name
    # Input and output on the 8-bit grid of 0..1: camera bytes map exactly, and the output's last rounding is
    # the display's (see tflite_tools.pin_output_range); calibrated ranges would be wider or clip.
    unit = [{"rmin": np.float32(0.0), "rmax": np.float32(1.0)}]
    overrides = {name: unit for name in [input_name] + output_chain(onnx.load(str(pre)))}
    quantize_static(str(pre), str(dst), calib.ort_reader(input_name), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    op_types_to_quantize=["Conv", "ConvTranspose", "PRelu", "Add", "Concat", "DepthToSpace",
                                          "Relu", "Reshape", "Transpose", "Squeeze", "Unsqueeze"],
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                   "TensorQuantOverrides": overrides})
    return onnx.load(str(dst))


_PASS_THROUGH = {"DepthToSpace", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity"}


def output_chain(proto) -> list[str]:
    """The graph output and the tensors that reach it through pass-through nodes, back to the last compute."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    names, t = [], proto.graph.output[0].name
    while True:
        names.append(t)
        node = producer.get(t)
        if node is None or node.op_type not in _PASS_THROUGH:
            return names
        t = node.input[0]


_NO_COMPUTE = {"QuantizeLinear", "DequantizeLinear", "Shape", "Gather", "Cast", "Slice", "Concat", "Unsqueeze",
               "Squeeze", "Reshape", "Constant"}


def _shape_tensors(graph) -> set:
    """Names of tensors computed from shapes alone: ``Shape`` outputs and what integer constants make of them."""
    from onnx import TensorProto

    ints = {t.name for t in graph.initializer if t.data_type in (TensorProto.INT64, TensorProto.INT32)}
    derived: set = set()
    for n in graph.node:  # ONNX nodes are topologically sorted
        if n.op_type == "Shape" or (n.input and all((not i) or i in derived or i in ints for i in n.input)
                                    and any(i in derived for i in n.input)):
            derived.update(n.output)
    return derived


def float_nodes(proto) -> list[str]:
    """Compute nodes of a QDQ model that still run in float (an input not fed by ``DequantizeLinear``).

    Shape arithmetic and data movement are not listed. Returned as ``"name (OpType)"``.
    """
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = _initializers(g)
    shape_math = _shape_tensors(g)
    out = []
    for n in g.node:
        if n.op_type in _NO_COMPUTE:
            continue
        data_inputs = [i for i in n.input if i and i not in inits]
        if data_inputs and all(i in shape_math for i in data_inputs):
            continue  # arithmetic on a shape (e.g. the NHWC boundary's H·s), not on pixels
        if any(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in data_inputs):
            out.append(f"{n.name} ({n.op_type})")
    return out


def op_types(proto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def embed_metadata(proto, payload: dict) -> None:
    """Store ``payload`` as JSON under :data:`METADATA_KEY`, plus each scalar as its own ``metadata_props``."""
    from onnx import helper

    props = {METADATA_KEY: json.dumps(payload, sort_keys=True)}
    props.update({k: str(v) for k, v in payload.items() if isinstance(v, (int, float, str))})
    helper.set_model_props(proto, props)


def read_metadata(path: str | Path) -> Optional[dict]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    return None


def tensor_specs(proto) -> tuple[TensorSpec, TensorSpec]:
    """Graph input/output as :class:`TensorSpec` (NHWC as tf2onnx keeps the TF layout at the boundary)."""
    from onnx import helper

    def spec(vi) -> TensorSpec:
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        return TensorSpec(name=vi.name, dtype=dtype, shape=dims)

    return spec(proto.graph.input[0]), spec(proto.graph.output[0])
