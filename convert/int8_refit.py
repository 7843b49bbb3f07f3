"""Least-squares refit of a full-integer TFLite file's output convolutions, against the float model.

The int8 file's last convolutions (the upsampler's, whose output is the picture) see features that earlier
layers already rounded, and their own weights are rounded to 255 levels per output channel. Measured on
``sesr_x2`` (80k steps): unrounding every activation gives back 0.016 dB of its 0.10 dB int8 loss on Set5, and
rounding only the upsampler conv's weights (float elsewhere) costs 0.046 dB. Both are fixed at once by choosing
that conv's int8 weights and int32 bias as the least-squares fit, on the calibration crops, of the *float*
model's output of that layer from the *int8* file's own input to it (layer-wise refitting as in AdaQuant,
Hubara et al. 2020; bias correction, Nagel et al. 2019), on the file's existing scales. The graph, its ops and
every grid stay as they are; only the weight and bias bytes change, and only when the calibration error
against the float model goes down.

A conv is refitted when it is a linear ``CONV_2D`` whose output reaches the model output through ``ADD``
(no fused activation), ``DEPTH_TO_SPACE`` and ``QUANTIZE`` only, whose input is not the picture itself (that
path is exact by construction, see :mod:`deconv_edge_convert.int8_forms`), and whose Keras layer is found by
name in the model the file was converted from. Files the emulation cannot run, or with more than one input,
are left alone.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from deconv_edge_core.errors import UserError

from .int8_sim import Int8Graph

_TO_OUTPUT = ("ADD", "DEPTH_TO_SPACE", "QUANTIZE")


def _layer_of(tensor_name: str, model, kernel_shape: tuple) -> Optional[object]:
    """The linear Keras ``Conv2D`` of ``model`` whose name appears in a TFLite tensor name, else the only one
    with that kernel shape (the converter names a graph's last tensor ``Identity``), else ``None``."""
    import keras

    linear = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
              and not isinstance(layer, keras.layers.Conv2DTranspose)
              and layer.get_config().get("activation") in (None, "linear")]
    names = {layer.name: layer for layer in linear}
    for part in tensor_name.split(";")[0].split("/"):
        layer = names.get(part) or names.get(re.sub(r"_\d+$", "", part))
        if layer is not None:
            return layer if tuple(layer.kernel.shape) == kernel_shape else None
    same = [layer for layer in linear if tuple(layer.kernel.shape) == kernel_shape]
    return same[0] if len(same) == 1 else None


def _targets(graph: Int8Graph, model) -> list:
    """``(op index, Keras layer)`` of every conv to refit (see the module docstring)."""
    producer = {op.outputs[0]: k for k, op in enumerate(graph.ops)}
    consumers: dict = {}
    for k, op in enumerate(graph.ops):
        for i in op.inputs:
            consumers.setdefault(i, []).append(k)

    def reaches_output(t: int) -> bool:
        while t != graph.output_index:
            users = consumers.get(t, [])
            if len(users) != 1:
                return False
            op = graph.ops[users[0]]
            if op.name not in _TO_OUTPUT or op.activation != 0:
                return False
            t = op.outputs[0]
        return True

    def reads_the_picture(t: int) -> bool:
        while t != graph.input_index:
            k = producer.get(t)
            if k is None or graph.ops[k].name != "QUANTIZE":
                return False
            t = graph.ops[k].inputs[0]
        return True

    out = []
    for k, op in enumerate(graph.ops):
        if op.name != "CONV_2D" or op.activation != 0 or op.stride != (1, 1) or op.padding != "SAME":
            continue
        if reads_the_picture(op.inputs[0]) or not reaches_output(op.outputs[0]):
            continue
        w = graph.tensors[op.inputs[1]].data
        if w is None or w.ndim != 4:
            continue
        layer = _layer_of(graph.tensors[op.outputs[0]].name, model, (w.shape[1], w.shape[2], w.shape[3], w.shape[0]))
        if layer is None:
            continue
        out.append((k, layer))
    return out


def _patches(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """SAME-padded (with 0) ``kh x kw`` patches of NHWC ``x`` as rows ``[kh, kw, c]``-ordered, plus a 1 for the bias."""
    n, h, w, c = x.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    cols = np.stack([xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], axis=3)
    cols = cols.reshape(n * h * w, kh * kw * c)
    return np.concatenate([cols, np.ones((cols.shape[0], 1))], axis=1)


def refit_output_convs(flatbuffer: bytes, model, samples: Sequence[np.ndarray]) -> tuple[bytes, list[str]]:
    """Refit the output convolutions' int8 weights and biases (module docstring).

    Args:
        flatbuffer: a full-integer ``.tflite`` converted from ``model``.
        model: the Keras model in the file's upsampler form (``ExportJob.model``).
        samples: calibration inputs, float32 ``(1, H, W, C)`` in the model's value range.

    Returns:
        The new flatbuffer (the old one when nothing was refitted) and one note per refitted conv.
    """
    import keras
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        graph = Int8Graph(flatbuffer)
    except UserError:
        return flatbuffer, []
    fb_model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    sg = fb_model.subgraphs[0]
    if len(sg.inputs) != 1 or len(sg.outputs) != 1 or not samples:
        return flatbuffer, []
    targets = _targets(graph, model)
    if not targets:
        return flatbuffer, []
    inp = graph.tensors[graph.input_index]
    s_in, zp_in = float(inp.scale[0]), float(inp.zero_point[0])
    lo, hi = {"uint8": (0, 255), "int8": (-128, 127)}.get(inp.dtype, (None, None))
    if lo is None:
        return flatbuffer, []
    as_bytes = [np.clip(np.round(np.asarray(x, np.float64) / s_in) + zp_in, lo, hi) for x in samples]
    seen = [(q - zp_in) * s_in for q in as_bytes]  # what the float model gets: the same 8-bit picture
    constants = graph.constants()

    def emulate(xq):
        values = {**constants, graph.input_index: xq}
        for op in graph.ops:
            values[op.outputs[0]] = graph.run_op(op, values)
        return values

    out_t = graph.tensors[graph.output_index]

    def calib_mse(refs) -> float:
        err = [np.mean(((emulate(q)[graph.output_index] - float(out_t.zero_point[0])) * float(out_t.scale[0])
                        - r) ** 2) for q, r in zip(as_bytes, refs)]
        return float(np.mean(err))

    refs = [np.asarray(model(x.astype(np.float32)), np.float64) for x in seen]
    before = calib_mse(refs)
    notes, changed = [], {}
    for k, layer in targets:
        op = graph.ops[k]
        x_t, w_t = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
        c_out, kh, kw, _ = w_t.data.shape
        probe = keras.Model(model.inputs[0], layer.output)
        hess, xty = 0.0, 0.0
        for q, x in zip(as_bytes, seen):
            feats = (emulate(q)[op.inputs[0]] - float(x_t.zero_point[0])) * float(x_t.scale[0])
            cols = _patches(feats, kh, kw)
            y = np.asarray(probe(x.astype(np.float32)), np.float64).reshape(-1, c_out)
            hess, xty = hess + cols.T @ cols, xty + cols.T @ y
        n = hess.shape[0]
        fit = np.linalg.solve(hess + 1e-6 * np.trace(hess) / n * np.eye(n), xty)  # [n, c_out]: weights, then bias
        s_w = w_t.channel_scales(c_out)
        b_t = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if b_t is None:
            continue
        s_b = np.asarray(b_t.scale, np.float64) if b_t.scale.size == c_out else float(x_t.scale[0]) * s_w
        w_int = np.clip(np.round(fit[:-1] / s_w), -127, 127).T.reshape(c_out, kh, kw, -1).astype(np.int8)
        b_int = np.round(fit[-1] / s_b).astype(np.int32)
        graph.tensors[op.inputs[1]] = _with_data(w_t, w_int)
        graph.tensors[op.inputs[2]] = _with_data(b_t, b_int)
        constants = graph.constants()
        changed[k] = (w_int, b_int, layer.name)
    after = calib_mse(refs)
    if not changed or after >= before:
        return flatbuffer, []
    for k, (w_int, b_int, name) in changed.items():
        op = graph.ops[k]
        for t, data in ((op.inputs[1], w_int), (op.inputs[2], b_int)):
            fb_model.buffers[sg.tensors[t].buffer].data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        notes.append(f"int8 weights of '{name}' refitted by least squares to the float model on "
                     f"{len(samples)} calibration crops (calibration MSE vs float {before:.3g} -> {after:.3g})")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(fb_model)), notes


def _with_data(tensor, data: np.ndarray):
    return replace(tensor, data=data)
