"""Quantization-aware fine-tuning of an int8 TFLite file, on the file's own graph (verified first).

:class:`~deconv_edge_convert.int8_sim.Int8Graph` reads the file; :class:`QatGraph` is the same graph in
TensorFlow with the convolution weights and biases as float variables (initialised from the file's int8
values). The forward pass rounds exactly as the kernels do: weights to their per-channel int8 grid, biases to
the int32 grid ``s_in · s_w``, every activation to its tensor's scale and zero point, clamped to its fused
activation. Rounding passes gradients straight through. Activation grids stay the calibrated ones, so the
graph, its scales and its pins are unchanged; :meth:`QatGraph.write` puts the trained int8 weights, their
scales and the biases back into the flatbuffer.

Before a step trains, :func:`fine_tune` checks that this forward pass gives the interpreter's bytes on a
training batch (the verification the campaign's last simulation lacked); after training, the written file is
checked against the interpreter again by the caller (:func:`~deconv_edge_convert.int8_sim.verify`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deconv_edge_core.errors import UserError

from .int8_sim import Int8Graph


@dataclass(frozen=True)
class QatConfig:
    """A fine-tuning run.

    Attributes:
        steps: optimizer steps.
        learning_rate: Adam's (weights are about 0.1-1; one int8 weight step is about 1/127 of a row's max).
        batch_size, lr_patch: patches per step and their low-resolution side.
        seed: patch sampling.
        max_mismatch: largest share of output bytes allowed to differ from the interpreter before training.
        learn_scales: also learn the activation grids (LSQ, Esser et al. 2020) of the convolutions' outputs
            that are not pinned to the 8-bit input/display grid 1/255 (the pins keep their exact roles).
        scale_learning_rate: Adam's for the log-scales.
    """

    steps: int = 300
    learning_rate: float = 2e-5
    batch_size: int = 16
    lr_patch: int = 48
    seed: int = 0
    max_mismatch: float = 0.01
    learn_scales: bool = False
    scale_learning_rate: float = 1e-3


def _ste_round(x):
    import tensorflow as tf

    r = tf.sign(x) * tf.floor(tf.abs(x) + 0.5)  # half away from zero, as the kernels
    return x + tf.stop_gradient(r - x)


class QatGraph:
    """The file's graph in TensorFlow, with trainable convolution weights (see the module docstring)."""

    def __init__(self, graph: Int8Graph, learn_scales: bool = False):
        import tensorflow as tf

        self.graph = graph
        self.weights: dict = {}
        #: conv op index -> the file's per-channel weight scales: a floor under the trained ones, since the
        #: output-conv refit leaves rows whose largest int8 weight is under 127 (max/127 would move their grid)
        self.file_scales: dict = {}
        #: tensor index -> log of its activation scale over the file's (0 at the start: exactly the file's)
        self.log_scales: dict = {}
        for k, op in enumerate(graph.ops):
            if op.name not in ("CONV_2D", "TRANSPOSE_CONV"):
                continue
            if op.name == "TRANSPOSE_CONV":
                raise UserError("QAT fine-tuning takes the CPU int8 files (sub-pixel form), not TRANSPOSE_CONV")
            x_t, w_t = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
            w = np.transpose(w_t.data.astype(np.float64), (1, 2, 3, 0))
            s_w = w_t.channel_scales(w.shape[-1])
            self.file_scales[k] = np.asarray(s_w, np.float32)
            b = graph.tensors[op.inputs[2]].data.astype(np.float64) if len(op.inputs) > 2 and op.inputs[2] >= 0 \
                else np.zeros(w.shape[-1])
            self.weights[k] = (tf.Variable((w * s_w).astype(np.float32), name=f"w{k}"),
                               tf.Variable((b * float(x_t.scale[0]) * s_w).astype(np.float32), name=f"b{k}"))
            out = op.outputs[0]
            s_out = float(graph.tensors[out].scale[0])
            if learn_scales and abs(s_out * 255.0 - 1.0) > 1e-6 and out != graph.output_index:
                self.log_scales[out] = tf.Variable(np.float32(0.0), name=f"s{out}")

    @property
    def variables(self) -> list:
        return [v for pair in self.weights.values() for v in pair]

    @property
    def scale_variables(self) -> list:
        return list(self.log_scales.values())

    def scale_of(self, index: int):
        """Tensor ``index``'s activation scale: the learned one, else the file's."""
        import tensorflow as tf

        s0 = float(self.graph.tensors[index].scale[0])
        return s0 * tf.exp(self.log_scales[index]) if index in self.log_scales else s0

    def _fq(self, x, t, activation: int = 0, index=None):
        """Real values → the tensor's int grid (clamped to dtype and activation) → real values."""
        import tensorflow as tf

        s, zp = float(t.scale[0]), float(t.zero_point[0])
        lo, hi = t.bounds(activation)  # the file's integer bounds, kept when the scale learns
        if index is not None and index in self.log_scales:
            s = s * tf.exp(self.log_scales[index])
        q = tf.clip_by_value(_ste_round(x / s) + zp, float(lo), float(hi))
        return (q - zp) * s

    def _weight_scale(self, w, k: int):
        import tensorflow as tf

        grown = tf.maximum(tf.reduce_max(tf.abs(w), axis=(0, 1, 2)), 1e-12) / 127.0
        return tf.stop_gradient(tf.maximum(grown, self.file_scales[k]))

    def __call__(self, x_bytes):
        """Real-valued output (NHWC) for input bytes ``x_bytes`` (float tensor holding the uint8 values)."""
        import tensorflow as tf

        g = self.graph
        in_t = g.tensors[g.input_index]
        values = {g.input_index: (x_bytes - float(in_t.zero_point[0])) * float(in_t.scale[0])}
        for k, op in enumerate(g.ops):
            out_t = g.tensors[op.outputs[0]]
            if op.name in ("QUANTIZE", "DEQUANTIZE"):
                y = values[op.inputs[0]] if out_t.dtype == "float32" else self._fq(values[op.inputs[0]], out_t)
            elif op.name == "CONV_2D":
                w, b = self.weights[k]
                s_in = tf.stop_gradient(self.scale_of(op.inputs[0]))
                s_w = self._weight_scale(w, k)
                w_q = tf.clip_by_value(_ste_round(w / s_w), -127.0, 127.0) * s_w
                b_q = _ste_round(b / (s_in * s_w)) * (s_in * s_w)
                acc = tf.nn.conv2d(values[op.inputs[0]], w_q, strides=(1, *op.stride, 1), padding=op.padding) + b_q
                y = self._fq(acc, out_t, op.activation, op.outputs[0])
            elif op.name == "ADD":
                y = self._fq(values[op.inputs[0]] + values[op.inputs[1]], out_t, op.activation)
            elif op.name == "CONCATENATION":
                y = self._fq(tf.concat([self._fq(values[i], out_t) for i in op.inputs], axis=op.axis), out_t,
                             op.activation)
            elif op.name == "DEPTH_TO_SPACE":
                y = tf.nn.depth_to_space(values[op.inputs[0]], op.block_size)
            else:  # pragma: no cover - Int8Graph refuses other ops
                raise UserError(f"QAT does not know {op.name}")
            values[op.outputs[0]] = y
        return values[g.output_index]

    def write(self, flatbuffer: bytes) -> bytes:
        """``flatbuffer`` with the trained int8 weights, their per-channel scales and the int32 biases."""
        from tensorflow.lite.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
        sg = model.subgraphs[0]
        for index, log_s in self.log_scales.items():
            s0 = float(self.graph.tensors[index].scale[0])
            sg.tensors[index].quantization.scale = np.array([s0 * np.exp(float(log_s.numpy()))], np.float32)
        for k, (w_var, b_var) in self.weights.items():
            op = self.graph.ops[k]
            w = w_var.numpy().astype(np.float64)
            grown = (np.maximum(np.abs(w).max(axis=(0, 1, 2)), 1e-12) / 127.0).astype(np.float32)
            s_w = np.maximum(grown, self.file_scales[k]).astype(np.float64)
            q = np.clip(np.sign(w / s_w) * np.floor(np.abs(w / s_w) + 0.5), -127, 127).astype(np.int8)
            s_in = np.float64(np.float32(float(self.scale_of(op.inputs[0]))))
            s_b = (np.float32(s_in) * s_w.astype(np.float32)).astype(np.float64)
            b = b_var.numpy().astype(np.float64)
            qb = np.sign(b / s_b) * np.floor(np.abs(b / s_b) + 0.5)
            _set(model, sg.tensors[op.inputs[1]], np.transpose(q, (3, 0, 1, 2)), s_w.astype(np.float32))
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                _set(model, sg.tensors[op.inputs[2]], qb.astype(np.int32), s_b.astype(np.float32))
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _set(model, tensor, data: np.ndarray, scales: np.ndarray) -> None:
    model.buffers[tensor.buffer].data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
    tensor.quantization.scale = scales
    tensor.quantization.zeroPoint = np.zeros(len(scales), np.int64)


def fine_tune(flatbuffer: bytes, sampler, cfg: QatConfig = QatConfig(), log=None) -> bytes:
    """Train the file's int8 weights through the verified simulation; returns the new flatbuffer.

    Args:
        flatbuffer: a CPU int8 super-resolution file (uint8 in and out).
        sampler: ``sample() -> (lr, hr)`` float 0..1 batches (:class:`deconv_edge_train.data.PatchSampler`).
        cfg: the run.
        log: optional ``callable(str)`` for progress.

    Raises:
        UserError: the simulation does not give the interpreter's bytes before training.
    """
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    graph = Int8Graph(flatbuffer)
    qat = QatGraph(graph, learn_scales=cfg.learn_scales)
    lr, _ = sampler.sample()
    x = np.clip(np.round(lr * 255.0), 0, 255).astype(np.uint8)
    interp = Interpreter(model_content=flatbuffer)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], [1, *x.shape[1:]], strict=False)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x[:1])
    interp.invoke()
    want = interp.get_tensor(out["index"]).astype(np.int64)
    s_out, zp_out = out["quantization"]
    got = np.round(qat(tf.constant(x[:1], tf.float32)).numpy() / s_out + zp_out).astype(np.int64)
    mismatch = float((got != want).mean())
    if mismatch > cfg.max_mismatch:
        raise UserError(f"the QAT simulation differs from the file on {mismatch:.2%} of the output bytes "
                        f"(allowed {cfg.max_mismatch:.2%}); not training on a simulation that is not the file")
    if log:
        log(f"simulation matches the file on {1 - mismatch:.4%} of the output bytes")
    opt = tf.keras.optimizers.Adam(cfg.learning_rate)
    opt_s = tf.keras.optimizers.Adam(cfg.scale_learning_rate)
    n_w = len(qat.variables)

    @tf.function
    def step(xb, hr):
        train = qat.variables + qat.scale_variables
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(qat(xb) - hr))
        grads = tape.gradient(loss, train)
        opt.apply_gradients(zip(grads[:n_w], train[:n_w]))
        if len(train) > n_w:
            opt_s.apply_gradients(zip(grads[n_w:], train[n_w:]))
        return loss

    for i in range(cfg.steps):
        lr, hr = sampler.sample()
        xb = np.clip(np.round(lr * 255.0), 0, 255).astype(np.float32)
        loss = float(step(tf.constant(xb), tf.constant(hr)))
        if log and (i + 1) % 50 == 0:
            log(f"step {i + 1}/{cfg.steps}: mse {loss:.3e}")
    return qat.write(flatbuffer)
