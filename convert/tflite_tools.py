"""Keras → TFLite: freezing, conversion modes, embedded metadata, op listing and I/O specs."""

from __future__ import annotations

import json
import types
from typing import Callable, Iterable, Optional

import numpy as np

from deconv_edge_core.manifest import Quantization, TensorSpec

#: Name of the TFLite metadata entry holding the embedded manifest essentials (JSON, UTF-8).
METADATA_NAME = "deconv_edge"


def frozen_function(model, input_shape: tuple):
    """A concrete TF function of ``model`` for ``input_shape`` (``None`` = dynamic) with weights as constants.

    Keras 3 models keep weights in resource variables; converting them unfrozen leaves VAR_HANDLE /
    READ_VARIABLE ops that the TFLite calibrator cannot run ("variable != nullptr" in read_variable.cc).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec(list(input_shape), tf.float32, name="lr")
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return convert_variables_to_constants_v2(fn.get_concrete_function())


def convert(model, input_shape: tuple, *, mode: str = "fp32",
            representative: Optional[Callable[[], Iterable[list]]] = None, io_dtype: str = "uint8") -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    Args:
        model: the Keras model (already in the wanted upsampler form).
        input_shape: NHWC, ``None`` for dynamic dims (batch must be 1 or None).
        mode: ``fp32``, ``fp16`` (fp16 weights), ``dynamic`` (int8 weights, float activations), ``int8``
            (full integer; needs ``representative``).
        representative: TFLite representative dataset (callable yielding ``[array]``).
        io_dtype: ``uint8`` or ``int8`` input/output for ``int8`` mode.
    """
    import tensorflow as tf

    cf = frozen_function(model, input_shape)
    # No trackable object is needed once the weights are constants; the warning about it is harmless.
    converter = _quiet(lambda: tf.lite.TFLiteConverter.from_concrete_functions([cf]))
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"uint8": tf.uint8, "int8": tf.int8}[io_dtype]
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    elif mode != "fp32":
        raise ValueError(f"unknown TFLite mode '{mode}'")
    return bytes(_quiet(converter.convert))


def _quiet(fn):
    """Run ``fn`` without the converter's Python warnings and absl chatter (deprecated-path notices)."""
    import logging
    import warnings

    from deconv_edge_core.quiet import muted_stderr

    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        # fd-level too: the MLIR quantizer prints "fully_quantize: ..." from C++; errors still raise.
        with warnings.catch_warnings(), muted_stderr():
            warnings.simplefilter("ignore")
            return fn()
    finally:
        absl_logger.setLevel(level)


def embed_metadata(flatbuffer: bytes, payload: dict) -> bytes:
    """Return ``flatbuffer`` with ``payload`` (JSON) stored as the metadata entry :data:`METADATA_NAME`."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    data = json.dumps(payload, sort_keys=True).encode()
    buf = schema.BufferT()
    buf.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers.append(buf)
    meta = schema.MetadataT()
    meta.name = METADATA_NAME
    meta.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME] + [meta]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(flatbuffer: bytes) -> Optional[dict]:
    """The embedded :data:`METADATA_NAME` JSON of a TFLite flatbuffer, or ``None``."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    for m in model.metadata or []:
        if _name(m.name) == METADATA_NAME:
            return json.loads(bytes(model.buffers[m.buffer].data).decode())
    return None


def _name(n) -> str:
    return n.decode() if isinstance(n, bytes) else str(n)


def _op_namer(model):
    """``op -> name`` for the operators of a parsed flatbuffer ``model`` (builtin name, custom code or OP_n)."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for oc in model.operatorCodes:
        # Codes < 127 live in the deprecated int8 field (schema v3a); take the larger of the two.
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        codes.append(names.get(code, oc.customCode.decode() if oc.customCode else f"OP_{code}"))
    return lambda op: codes[op.opcodeIndex]


def op_names(flatbuffer: bytes) -> list[str]:
    """Builtin op names of every operator of the main subgraph, in execution order."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    op_name = _op_namer(model)
    return [op_name(op) for op in model.subgraphs[0].operators]


def op_versions(flatbuffer: bytes) -> dict:
    """``{builtin op name: sorted versions}`` of the operator codes a flatbuffer declares (what a compiler reads)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    op_name = _op_namer(model)
    out: dict = {}
    for i, oc in enumerate(model.operatorCodes):
        name = op_name(types.SimpleNamespace(opcodeIndex=i))
        out.setdefault(name, set()).add(int(oc.version))
    return {k: sorted(v) for k, v in sorted(out.items())}


def tensor_specs(flatbuffer: bytes) -> tuple[TensorSpec, TensorSpec]:
    """Input and output :class:`TensorSpec` as the interpreter reports them (shape signature, quantization)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flatbuffer)
    return _spec(interp.get_input_details()[0]), _spec(interp.get_output_details()[0])


def _spec(detail: dict) -> TensorSpec:
    sig = detail.get("shape_signature")
    shape = tuple(None if int(d) < 0 else int(d) for d in (sig if sig is not None and len(sig) else detail["shape"]))
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quant = Quantization(float(scale), int(zero_point)) if scale else None
    return TensorSpec(name=str(detail["name"]), dtype=np.dtype(detail["dtype"]).name, shape=shape, quantization=quant)


def tensor_dtypes(flatbuffer: bytes) -> dict:
    """``{tensor name: dtype name}`` of every tensor of the main subgraph."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flatbuffer)
    return {d["name"]: np.dtype(d["dtype"]).name for d in interp.get_tensor_details()}


#: Ops that pass values through unchanged (their output must keep their input's quantization).
_PASS_THROUGH = {"DEPTH_TO_SPACE", "RESHAPE", "QUANTIZE", "SQUEEZE", "EXPAND_DIMS"}


def pin_output_range(flatbuffer: bytes, lo: float = 0.0, hi: float = 1.0) -> bytes:
    """Quantize the model output (and the tensors feeding it unchanged) on the display grid ``[lo, hi]``/255.

    The calibrated output range is wider than 0..1 (overshoot), so its int8 step is coarser than the 8-bit
    display's and the two roundings add noise (~0.03 dB). With ``scale = (hi - lo) / 255`` the last int8
    rounding *is* the display rounding and saturation is the display clip. Safe to patch: ADD, CONV_2D and
    TRANSPOSE_CONV derive their requantization multipliers from the tensor scales when the interpreter
    prepares them. Only full-integer models are changed.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    sg = model.subgraphs[0]
    op_name = _op_namer(model)
    producer = {int(o): op for op in sg.operators for o in op.outputs}
    types = {schema.TensorType.INT8: -128, schema.TensorType.UINT8: 0}
    chain, t = [], int(sg.outputs[0])
    while True:
        if sg.tensors[t].type not in types:
            return flatbuffer
        chain.append(t)
        op = producer.get(t)
        if op is None:
            return flatbuffer
        if op_name(op) not in _PASS_THROUGH:
            break
        t = int(op.inputs[0])
    scale = (hi - lo) / 255.0
    for t in chain:
        tensor = sg.tensors[t]
        zp = types[tensor.type] + int(round(-lo / scale))
        tensor.quantization.scale = np.array([scale], dtype=np.float32)
        tensor.quantization.zeroPoint = np.array([zp], dtype=np.int64)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


#: Where the bias and the data input sit among an op's inputs.
_BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "TRANSPOSE_CONV": 3}
_DATA_INPUT = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 0, "TRANSPOSE_CONV": 2}


def _pin_residual(sg, nearest: int, display: float, quant, op_name, set_grid) -> None:
    """Put the residual added to the nearest-neighbour branch on the display grid too.

    The nearest branch is on the 8-bit grid, so with the residual on it as well the ADD is an exact integer
    sum and the only rounding left is the residual's own, which is the display rounding of the float model's
    output (``round(r) + n == round(r + n)`` for ``n`` on the grid). Only when the calibrated residual fits the
    grid's int8 span (±0.5); a wider one keeps its own scale.
    """
    for op in sg.operators:
        if op_name(op) != "ADD" or nearest not in [int(i) for i in op.inputs]:
            continue
        other = next((int(i) for i in op.inputs if int(i) != nearest), None)
        q = quant(other) if other is not None else None
        if q is None:
            continue
        lo = (-128 - int(q.zeroPoint[0])) * float(q.scale[0])
        hi = (127 - int(q.zeroPoint[0])) * float(q.scale[0])
        if -128 * display <= lo and hi <= 127 * display:
            set_grid(other, display, 0)


def pin_exact_grids(flatbuffer: bytes, pins=None) -> bytes:
    """Make the lossless paths of a full-integer model lossless: the 8-bit input and the nearest-neighbour branch
    that ``pins`` (a :class:`deconv_edge_convert.int8_forms.Pins`, from the rewrite) names, if any.

    The calibrated input range is the calibration pictures' (e.g. 0..0.97, a grid of step 1/263), so every
    8-bit pixel would be rounded again before the model starts; the input is put on the display grid (1/255,
    zero at 0) and the int32 biases of its consumers are rescaled to match. The nearest-neighbour branch
    (weights 1) copies its input, but the converter gives it the range of the ADD it feeds (a quirk of the
    calibrator: an ADD's first input inherits the output's range), so it is put back on its input's grid.
    TFLite derives the requantization multipliers from the tensor scales when it prepares each op.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from .int8_forms import tensor_of_layer

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    sg = model.subgraphs[0]
    op_name = _op_namer(model)
    nearest_layer = pins.nearest if pins is not None else None

    def quant(t: int):
        q = sg.tensors[t].quantization
        return None if q is None or q.scale is None or len(q.scale) != 1 else q

    def set_grid(t: int, scale: float, zero_point: int) -> None:
        q = sg.tensors[t].quantization
        old = float(q.scale[0])
        q.scale = np.array([scale], dtype=np.float32)
        q.zeroPoint = np.array([zero_point], dtype=np.int64)
        for op in sg.operators:  # consumers' int32 biases are in units of input_scale * weight_scale
            name = op_name(op)
            if name not in _BIAS_INPUT or len(op.inputs) <= _BIAS_INPUT[name]:
                continue
            if int(op.inputs[_DATA_INPUT[name]]) != t or int(op.inputs[_BIAS_INPUT[name]]) < 0:
                continue
            bias = sg.tensors[int(op.inputs[_BIAS_INPUT[name]])]
            buf = model.buffers[bias.buffer]
            if buf.data is None:
                continue
            values = np.frombuffer(bytes(bytearray(buf.data)), dtype=np.int32)
            buf.data = np.round(values * (old / scale)).astype(np.int32).view(np.uint8)
            bias.quantization.scale = (np.asarray(bias.quantization.scale, np.float64) * (scale / old)).astype(
                np.float32)

    changed = False
    display = 1.0 / 255.0
    for t in (int(i) for i in sg.inputs):
        q = quant(t)
        if q is None:
            continue
        if sg.tensors[t].type == schema.TensorType.UINT8:
            q.scale, q.zeroPoint = np.array([display], np.float32), np.array([0], np.int64)
            for op in sg.operators:
                if op_name(op) == "QUANTIZE" and int(op.inputs[0]) == t and quant(int(op.outputs[0])) is not None:
                    set_grid(int(op.outputs[0]), display, -128)
            changed = True
        elif sg.tensors[t].type == schema.TensorType.INT8:
            set_grid(t, display, -128)
            changed = True
    exact = {int(op.outputs[0]) for op in sg.operators if op_name(op) == "QUANTIZE"} | {int(i) for i in sg.inputs}
    for op in sg.operators:
        # A concat of the (exact) input with features rescaled to 0..1 (deconv_edge_convert.rewrite): one grid for all,
        # the input's; XNNPACK only takes a CONCATENATION whose inputs and output share it.
        if op_name(op) != "CONCATENATION" or not any(int(i) in exact for i in op.inputs):
            continue
        src = next(int(i) for i in op.inputs if int(i) in exact)
        q = quant(src)
        if q is None:
            continue
        for t in [int(i) for i in op.inputs] + [int(op.outputs[0])]:
            if t != src and quant(t) is not None:
                set_grid(t, float(q.scale[0]), int(q.zeroPoint[0]))
                changed = True
    for op in sg.operators:
        name = op_name(op)
        if name not in _BIAS_INPUT:
            continue
        out, inp = int(op.outputs[0]), int(op.inputs[_DATA_INPUT[name]])
        tname = sg.tensors[out].name
        tname = tname.decode() if isinstance(tname, bytes) else str(tname)
        if tensor_of_layer(tname, nearest_layer) and quant(inp) is not None and quant(out) is not None:
            set_grid(out, float(quant(inp).scale[0]), int(quant(inp).zeroPoint[0]))
            changed = True
            _pin_residual(sg, out, display, quant, op_name, set_grid)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else flatbuffer


#: Ops whose output shares its input's quantization (a range change must move along the whole chain).
_SAME_GRID = {"DEPTH_TO_SPACE", "RESHAPE"}
#: Ops that requantize their output: a narrower output grid is a saturating clamp there.
_REQUANTIZING = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "ADD"}


def tighten_relu_add_inputs(flatbuffer: bytes) -> tuple[bytes, list[str]]:
    """Narrow the grids of the inputs of ``ADD`` + fused ReLU to what can still reach a positive sum.

    In ``relu(a + b)`` with ``b <= b_max`` (its grid's top), any ``a < -b_max`` gives 0 whatever ``b`` is, so ``a``
    may be clamped at ``-b_max`` without changing one output value. The calibrated range of ``a`` (a decoder's
    pre-activation upsampling conv, say) is often much lower than that, which wastes int8 steps: ``rednet``'s
    last upsampling conv spans -6.4..3.6 while its skip tops out at 1.1, and its rounding cost 0.17 dB on Set12.
    The clamp is the requantizing producer's own saturation, so nothing is added to the graph; only tensors with
    one consumer (this ADD) are changed, along same-grid chains (DEPTH_TO_SPACE) back to that producer.

    Returns:
        The flatbuffer (unchanged when nothing narrows) and a note per narrowed tensor.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    relu = schema.ActivationFunctionType.RELU
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    sg = model.subgraphs[0]
    op_name = _op_namer(model)
    producer = {int(o): op for op in sg.operators for o in op.outputs}
    consumers: dict = {}
    for op in sg.operators:
        for i in op.inputs:
            consumers[int(i)] = consumers.get(int(i), 0) + 1
    outputs = {int(o) for o in sg.outputs}

    def grid(t: int):
        q = sg.tensors[t].quantization
        if sg.tensors[t].type != schema.TensorType.INT8 or q is None or q.scale is None or len(q.scale) != 1:
            return None
        return float(q.scale[0]), int(q.zeroPoint[0])

    def chain_of(t: int):
        """``t`` and the same-grid tensors back to its requantizing producer, or None if that path branches."""
        chain = []
        while True:
            if consumers.get(t, 0) != 1 or t in outputs or grid(t) is None:
                return None
            chain.append(t)
            op = producer.get(t)
            if op is None:
                return None
            name = op_name(op)
            if name in _REQUANTIZING:
                opt = op.builtinOptions
                return chain if int(getattr(opt, "fusedActivationFunction", 0) or 0) == 0 else None
            if name not in _SAME_GRID:
                return None
            t = int(op.inputs[0])

    notes = []
    for op in sg.operators:
        if op_name(op) != "ADD" or int(getattr(op.builtinOptions, "fusedActivationFunction", 0) or 0) != relu:
            continue
        ins = [int(i) for i in op.inputs[:2]]
        grids = [grid(t) for t in ins]
        if None in grids:
            continue
        tops = [(127 - zp) * s for s, zp in grids]
        for k, t in enumerate(ins):
            s, zp = grids[k]
            lo, hi = (-128 - zp) * s, (127 - zp) * s
            floor = -tops[1 - k]  # below it the sum is negative for every value of the other input
            if not (lo < floor < 0 < hi) or (hi - floor) > 0.9 * (hi - lo):
                continue  # nothing worth narrowing
            chain = chain_of(t)
            if chain is None:
                continue
            scale = (hi - floor) / 255.0
            new_zp = int(np.clip(round(-128 - floor / scale), -128, 127))
            for c in chain:
                q = sg.tensors[c].quantization
                q.scale = np.array([scale], dtype=np.float32)
                q.zeroPoint = np.array([new_zp], dtype=np.int64)
            name = sg.tensors[t].name
            name = name.decode() if isinstance(name, bytes) else str(name)
            notes.append(f"int8 range of '{name.split(';')[0]}' narrowed from {lo:.3g}..{hi:.3g} to {floor:.3g}..{hi:.3g}"
                         " (it feeds ADD + ReLU, whose other input tops out at "
                         f"{-floor:.3g}: the same output, a {(hi - lo) / (hi - floor):.1f}x finer grid)")
    if not notes:
        return flatbuffer, []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), notes
