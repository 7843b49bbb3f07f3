"""Keras → TFLite: freezing, conversion modes, embedded metadata, op listing and I/O specs."""

from __future__ import annotations

import json
from typing import Callable, Iterable, Optional

import numpy as np

from edge_runtime.manifest import Quantization, TensorSpec

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

    from edge_runtime.quiet import muted_stderr

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


def op_names(flatbuffer: bytes) -> list[str]:
    """Builtin op names of every operator of the main subgraph, in execution order."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    codes = []
    for oc in model.operatorCodes:
        # Codes < 127 live in the deprecated int8 field (schema v3a); take the larger of the two.
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        codes.append(names.get(code, oc.customCode.decode() if oc.customCode else f"OP_{code}"))
    return [codes[op.opcodeIndex] for op in model.subgraphs[0].operators]


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
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
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
        oc = model.operatorCodes[op.opcodeIndex]
        if names.get(max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))) not in _PASS_THROUGH:
            break
        t = int(op.inputs[0])
    scale = (hi - lo) / 255.0
    for t in chain:
        tensor = sg.tensors[t]
        zp = types[tensor.type] + int(round(-lo / scale))
        tensor.quantization.scale = np.array([scale], dtype=np.float32)
        tensor.quantization.zeroPoint = np.array([zp], dtype=np.int64)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
