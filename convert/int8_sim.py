"""An emulation of a full-integer TFLite file, read from the file itself: the ground truth a QAT simulation must meet.

A fake-quant simulation built from the Keras model guesses where the converter quantizes, with which scales, and
how the kernels round; the last one claimed 0.15 dB more than the file gave. This one takes every tensor's int8
data, scale and zero point, and every op's options from the flatbuffer, and runs the integer kernels' arithmetic
in float64 (exact for these sums): a convolution accumulates ``(q_in - zp_in) · q_w`` plus the int32 bias, then
requantizes by ``s_in · s_w / s_out`` with round-half-away-from-zero and clamps to the fused activation's range;
ADD rescales both inputs to the output grid before one rounding; QUANTIZE requantizes; CONCATENATION and
DEPTH_TO_SPACE move bytes. :func:`verify` compares it with the interpreter on real pictures.

Only the ops the package's converters emit are known (:data:`OPS`); anything else is refused by name, so a
simulation is never silently wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from deconv_edge_core.errors import UserError

#: Fused activations: TFLite's ActivationFunctionType codes → the real-valued range they clamp to.
_ACTIVATIONS = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 3: (0.0, 6.0)}
_INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int32": (-(2 ** 31), 2 ** 31 - 1)}


@dataclass(frozen=True)
class QTensor:
    """One tensor of the file: dtype, per-tensor or per-channel scales and zero points, constant data if any."""

    name: str
    dtype: str
    scale: np.ndarray
    zero_point: np.ndarray
    data: Optional[np.ndarray] = None

    def bounds(self, activation: int = 0) -> tuple:
        """The integer range a result in this tensor is clamped to: its dtype's, narrowed by a fused activation
        (ReLU clamps at the zero point, ReLU6 also at the grid step nearest 6)."""
        lo, hi = _INT_RANGE[self.dtype]
        a_lo, a_hi = _ACTIVATIONS[activation]
        s, zp = float(self.scale[0]), float(self.zero_point[0])
        if np.isfinite(a_lo):
            lo = max(lo, zp + float(_round(np.float64(a_lo / s))))
        if np.isfinite(a_hi):
            hi = min(hi, zp + float(_round(np.float64(a_hi / s))))
        return float(lo), float(hi)

    def channel_scales(self, channels: int) -> np.ndarray:
        """Per-channel scales, a per-tensor scale repeated ``channels`` times."""
        return self.scale if self.scale.size > 1 else np.full(channels, self.scale[0])


@dataclass(frozen=True)
class QOp:
    """One operator: its builtin name, tensor indices and the options the emulation needs."""

    name: str
    inputs: tuple
    outputs: tuple
    stride: tuple = (1, 1)
    padding: str = "SAME"
    activation: int = 0
    block_size: int = 0
    axis: int = -1


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero, as TFLite's fixed-point requantization does."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


class Int8Graph:
    """The main subgraph of a TFLite flatbuffer, runnable in numpy.

    Args:
        flatbuffer: the ``.tflite`` file's bytes.

    Raises:
        UserError: an op the emulation does not know, or a tensor it cannot read.
    """

    OPS = ("QUANTIZE", "CONV_2D", "TRANSPOSE_CONV", "ADD", "CONCATENATION", "DEPTH_TO_SPACE", "DEQUANTIZE")

    def __init__(self, flatbuffer: bytes):
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils

        from .tflite_tools import _op_namer

        model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
        sg = model.subgraphs[0]
        op_name = _op_namer(model)
        names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        self.tensors: list = []
        for t in sg.tensors:
            dtype = names.get(t.type, "?")
            q = t.quantization
            scale = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float64)
            zp = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
            buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
            data = None
            if buf is not None and len(buf):
                data = np.frombuffer(bytes(np.asarray(buf, np.uint8)), dtype=np.dtype(dtype)).reshape(t.shape)
            self.tensors.append(QTensor(name=_name(t.name), dtype=dtype, scale=scale, zero_point=zp, data=data))
        self.ops: list = []
        for op in sg.operators:
            name = op_name(op)
            if name not in self.OPS:
                raise UserError(f"the int8 emulation does not know {name}; it knows {', '.join(self.OPS)}")
            opt = op.builtinOptions
            kw = {}
            if name == "CONV_2D":
                if int(getattr(opt, "dilationWFactor", 1)) != 1 or int(getattr(opt, "dilationHFactor", 1)) != 1:
                    raise UserError("the int8 emulation does not know dilated convolutions")
                kw = dict(stride=(int(opt.strideH), int(opt.strideW)),
                          padding="SAME" if int(opt.padding) == schema.Padding.SAME else "VALID",
                          activation=int(opt.fusedActivationFunction))
            elif name == "TRANSPOSE_CONV":
                kw = dict(stride=(int(opt.strideH), int(opt.strideW)),
                          padding="SAME" if int(opt.padding) == schema.Padding.SAME else "VALID",
                          activation=int(getattr(opt, "fusedActivationFunction", 0)))
            elif name in ("ADD", "CONCATENATION") and opt is not None:
                kw = dict(activation=int(getattr(opt, "fusedActivationFunction", 0)))
                if name == "CONCATENATION":
                    kw["axis"] = int(opt.axis)
            elif name == "DEPTH_TO_SPACE":
                kw = dict(block_size=int(opt.blockSize))
            if kw.get("activation", 0) not in _ACTIVATIONS:
                raise UserError(f"the int8 emulation does not know fused activation {kw['activation']}")
            self.ops.append(QOp(name=name, inputs=tuple(int(i) for i in op.inputs),
                                outputs=tuple(int(o) for o in op.outputs), **kw))
        self.input_index, self.output_index = int(sg.inputs[0]), int(sg.outputs[0])

    # -- the kernels --------------------------------------------------------------------------------
    def _clamp(self, q: np.ndarray, t: QTensor, activation: int = 0) -> np.ndarray:
        return np.clip(q, *t.bounds(activation))

    def _real(self, q: np.ndarray, t: QTensor) -> np.ndarray:
        return (q - float(t.zero_point[0])) * float(t.scale[0])

    def _conv(self, op: QOp, values: dict) -> np.ndarray:
        import tensorflow as tf

        transpose = op.name == "TRANSPOSE_CONV"  # inputs: output shape, weights, data, bias
        data_i, w_i, b_pos = (2, 1, 3) if transpose else (0, 1, 2)
        x_t, w_t, out_t = self.tensors[op.inputs[data_i]], self.tensors[op.inputs[w_i]], self.tensors[op.outputs[0]]
        b_t = self.tensors[op.inputs[b_pos]] if len(op.inputs) > b_pos and op.inputs[b_pos] >= 0 else None
        x = values[op.inputs[data_i]] - float(x_t.zero_point[0])  # real zero is integer 0: SAME pads with it
        if transpose:
            w = np.transpose(w_t.data.astype(np.float64), (1, 2, 0, 3))  # [out, kh, kw, in] -> HW(out)(in)
            n, h, wd, _ = x.shape
            shape = (n, h * op.stride[0], wd * op.stride[1], w.shape[2])
            acc = tf.nn.conv2d_transpose(tf.constant(x), tf.constant(w), shape, strides=(1, *op.stride, 1),
                                         padding=op.padding).numpy()
        else:
            w = np.transpose(w_t.data.astype(np.float64), (1, 2, 3, 0))  # [out, kh, kw, in] -> HWIO
            acc = tf.nn.conv2d(tf.constant(x), tf.constant(w), strides=(1, *op.stride, 1), padding=op.padding).numpy()
        if b_t is not None:
            acc = acc + b_t.data.astype(np.float64)
        s_w = w_t.channel_scales(w.shape[2] if transpose else w.shape[3])
        q = _round(acc * (float(x_t.scale[0]) * s_w / float(out_t.scale[0]))) + float(out_t.zero_point[0])
        return self._clamp(q, out_t, op.activation)

    def _add(self, op: QOp, values: dict) -> np.ndarray:
        a_t, b_t, out_t = (self.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
        real = self._real(values[op.inputs[0]], a_t) + self._real(values[op.inputs[1]], b_t)
        return self._clamp(_round(real / float(out_t.scale[0])) + float(out_t.zero_point[0]), out_t, op.activation)

    def _requantize(self, op: QOp, values: dict) -> np.ndarray:
        in_t, out_t = self.tensors[op.inputs[0]], self.tensors[op.outputs[0]]
        real = self._real(values[op.inputs[0]], in_t)
        if out_t.dtype == "float32":
            return real
        return self._clamp(_round(real / float(out_t.scale[0])) + float(out_t.zero_point[0]), out_t)

    def _concat(self, op: QOp, values: dict) -> np.ndarray:
        out_t = self.tensors[op.outputs[0]]
        parts = []
        for i in op.inputs:
            t = self.tensors[i]
            same = np.allclose(t.scale[0], out_t.scale[0]) and t.zero_point[0] == out_t.zero_point[0]
            parts.append(values[i] if same else
                         self._clamp(_round(self._real(values[i], t) / float(out_t.scale[0]))
                                     + float(out_t.zero_point[0]), out_t))
        return self._clamp(np.concatenate(parts, axis=op.axis), out_t, op.activation)

    def _depth_to_space(self, op: QOp, values: dict) -> np.ndarray:
        x = values[op.inputs[0]]
        n, h, w, c = x.shape
        b = op.block_size
        return x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * b, w * b, -1)

    def run_op(self, op: QOp, values: dict) -> np.ndarray:
        """One op's output (integer values as float64) from ``values``: tensor index -> integer values."""
        kernels = {"CONV_2D": self._conv, "TRANSPOSE_CONV": self._conv, "ADD": self._add, "QUANTIZE": self._requantize,
                   "DEQUANTIZE": self._requantize, "CONCATENATION": self._concat,
                   "DEPTH_TO_SPACE": self._depth_to_space}
        return kernels[op.name](op, values)

    def constants(self) -> dict:
        """Tensor index -> stored values (weights, biases, shapes)."""
        return {t: tensor.data for t, tensor in enumerate(self.tensors) if tensor.data is not None}

    def run(self, x: np.ndarray) -> np.ndarray:
        """The file's output for input ``x`` (in the input tensor's own dtype, NHWC), in the output's dtype."""
        values = {**self.constants(), self.input_index: np.asarray(x, np.float64)}
        for op in self.ops:
            values[op.outputs[0]] = self.run_op(op, values)
        out_t = self.tensors[self.output_index]
        out = values[self.output_index]
        return out.astype(np.float32) if out_t.dtype == "float32" else out.astype(np.dtype(out_t.dtype))


def _name(n) -> str:
    return n.decode() if isinstance(n, bytes) else str(n)


@dataclass(frozen=True)
class Verification:
    """The emulation against the interpreter on the same pictures.

    Attributes:
        psnr_file_db: the file's PSNR through the interpreter (protocol: Y, shaved).
        psnr_sim_db: the emulation's PSNR on the same inputs.
        identical_fraction: share of output bytes that are exactly equal.
        max_abs_diff: largest byte difference.
    """

    psnr_file_db: float
    psnr_sim_db: float
    identical_fraction: float
    max_abs_diff: int

    @property
    def gap_db(self) -> float:
        return abs(self.psnr_sim_db - self.psnr_file_db)

    def to_dict(self) -> dict:
        return {"psnr_file_db": self.psnr_file_db, "psnr_sim_db": self.psnr_sim_db, "gap_db": self.gap_db,
                "identical_fraction": self.identical_fraction, "max_abs_diff": self.max_abs_diff}


def verify(artifact, images, scale: int) -> Verification:
    """Run a super-resolution int8 file and its emulation on ``images`` (``NamedImage`` ground truths) per the
    protocol, and compare.

    Args:
        artifact: the ``.tflite`` path (uint8 input and output: the package's int8 files).
        images: decoded ground-truth pictures (``deconv_edge_train.data``).
        scale: the file's upscaling factor.
    """
    from pathlib import Path

    from ai_edge_litert.interpreter import Interpreter

    from deconv_edge_train.evaluate import evaluate_images

    data = Path(artifact).read_bytes()
    graph = Int8Graph(data)
    interp = Interpreter(model_content=data)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if inp["dtype"] != np.uint8 or out["dtype"] != np.uint8:
        raise UserError(f"'{artifact}': the emulation checks uint8-in, uint8-out files (the int8 formats)")
    s_in, zp_in = inp["quantization"]
    s_out, zp_out = out["quantization"]
    diffs = {"same": 0, "all": 0, "max": 0, "n": 0}
    got: list = []  # the file's outputs, in picture order

    def to_bytes(lr: np.ndarray) -> np.ndarray:
        return np.clip(np.round(lr / s_in) + zp_in, 0, 255).astype(np.uint8)[None, :, :, None]

    def file_predict(lr: np.ndarray) -> np.ndarray:
        q = to_bytes(lr)
        interp.resize_tensor_input(inp["index"], list(q.shape), strict=False)
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        got.append(y)
        return (y[0, :, :, 0].astype(np.float64) - zp_out) * s_out

    def sim_predict(lr: np.ndarray) -> np.ndarray:
        y = graph.run(to_bytes(lr))
        ref = got[diffs["n"]]
        diffs["n"] += 1
        d = np.abs(y.astype(np.int64) - ref.astype(np.int64))
        diffs["same"] += int((d == 0).sum())
        diffs["all"] += int(d.size)
        diffs["max"] = max(diffs["max"], int(d.max()))
        return (y[0, :, :, 0].astype(np.float64) - zp_out) * s_out

    psnr_file = float(evaluate_images(file_predict, images, scale).psnr_db)
    psnr_sim = float(evaluate_images(sim_predict, images, scale).psnr_db)
    return Verification(psnr_file_db=psnr_file, psnr_sim_db=psnr_sim,
                        identical_fraction=diffs["same"] / max(1, diffs["all"]), max_abs_diff=diffs["max"])
