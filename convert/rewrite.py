"""Graph rewrites applied before export, all by transforming trained weights (no retraining).

**Sub-pixel upsampler.** A ``Conv2DTranspose`` with stride ``r``, kernel ``k`` and ``padding='same'`` is exactly a
``Conv2D`` with ``r²·C_out`` filters on the low-resolution grid followed by depth-to-space (Shi et al. 2016, "Is the
deconvolution layer the same as a convolutional layer?"). TF's 'same' transposed convolution sends input ``i`` to
output ``y`` through tap ``t = y - i·r + pad`` with ``pad = max(k - r, 0) // 2`` (see
``deconv_edge_train.models.base.deconv_offset``). Writing ``y = j·r + p`` (phase ``p``) and ``i = j + d`` gives
``t = p + pad - r·d``: phase ``p`` of LR pixel ``j`` reads LR offsets ``d`` with ``0 <= t < k``. The offsets span
``[d_min, d_max]``; a 'same' ``Conv2D`` of odd size ``2·max(-d_min, d_max) + 1`` covers them (5 for k=9, r=2;
3 for r=3 and r=4, i.e. ``ceil(k / r)``), with zero taps where an offset is unused.

**Split residual concat.** The models feed ``Concatenate([features, lr])`` to the upsampler. A TFLite int8
CONCATENATION forces one scale on all its inputs, so the 0..1 LR input would inherit the features' much wider
range (≈37 levels instead of 255) and lose ~1 dB. A convolution over concatenated channels is the sum of
convolutions over each group, so the upsampler is split into one convolution per group plus an ``Add`` (whose
int8 kernel rescales each input on its own).

**int8 forms.** The int8-only rewrites (two-term residual weights, the nearest-neighbour anchor) are
described, named and chosen between in ``deconv_edge_convert.int8_forms``; this module does the weight
arithmetic and builds the layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_train.models.base import UPSAMPLER_LAYER, deconv_offset

from .int8_forms import NAMES

UPSAMPLERS = ("deconv", "subpixel")


@keras.saving.register_keras_serializable(package="deconv_edge")
class DepthToSpace(keras.layers.Layer):
    """``tf.nn.depth_to_space`` (NHWC, DCR order): TFLite DEPTH_TO_SPACE, ONNX DepthToSpace."""

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        import tensorflow as tf

        return tf.nn.depth_to_space(x, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.block_size
        return (n, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@dataclass(frozen=True)
class SubpixelTaps:
    """How a transposed convolution's taps land on the LR grid along one axis.

    Attributes:
        kernel: transposed-convolution kernel size ``k``.
        stride: ``r``.
        pad: the 'same' offset (tap index of input ``i`` at output ``i·r``).
        radius: half-size of the equivalent 'same' ``Conv2D`` kernel (size ``2·radius + 1``).
    """

    kernel: int
    stride: int
    pad: int
    radius: int

    @classmethod
    def same(cls, kernel: int, stride: int) -> SubpixelTaps:
        pad = max(kernel - stride, 0) // 2
        offsets = [d for p in range(stride) for t in range(kernel) if (p + pad - t) % stride == 0
                   for d in [(p + pad - t) // stride]]
        return cls(kernel, stride, pad, max(max(offsets), -min(offsets)))

    @property
    def size(self) -> int:
        return 2 * self.radius + 1

    def tap(self, phase: int, offset: int) -> int | None:
        """Transposed-conv tap used by output phase ``phase`` for LR offset ``offset``; ``None`` if unused."""
        t = phase + self.pad - self.stride * offset
        return t if 0 <= t < self.kernel else None


def subpixel_weights(kernel: np.ndarray, bias: np.ndarray | None, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn 'same' ``Conv2DTranspose`` weights into ``Conv2D`` + depth-to-space weights.

    Args:
        kernel: Keras transposed-convolution kernel, shape ``(kh, kw, c_out, c_in)``.
        bias: shape ``(c_out,)`` or ``None``.
        stride: ``r`` (same along both axes).

    Returns:
        ``(conv_kernel, conv_bias)``: kernel ``(K, K', c_in, r·r·c_out)`` for a stride-1 'same' ``Conv2D``
        whose output channel ``(py·r + px)·c_out + c`` is output phase ``(py, px)`` of channel ``c``
        (``tf.nn.depth_to_space`` order), and bias ``(r·r·c_out,)``.
    """
    kh, kw, c_out, c_in = kernel.shape
    r = int(stride)
    ty, tx = SubpixelTaps.same(kh, r), SubpixelTaps.same(kw, r)
    out = np.zeros((ty.size, tx.size, c_in, r * r * c_out), dtype=np.float64)
    for py in range(r):
        for px in range(r):
            base = (py * r + px) * c_out
            for dy in range(-ty.radius, ty.radius + 1):
                t_y = ty.tap(py, dy)
                if t_y is None:
                    continue
                for dx in range(-tx.radius, tx.radius + 1):
                    t_x = tx.tap(px, dx)
                    if t_x is None:
                        continue
                    # kernel[t_y, t_x] is (c_out, c_in); the conv wants (c_in, c_out).
                    out[dy + ty.radius, dx + tx.radius, :, base:base + c_out] = kernel[t_y, t_x].T
    b = np.zeros(c_out) if bias is None else np.asarray(bias, np.float64)
    return out.astype(np.float32), np.tile(b, r * r).astype(np.float32)


def _conv_from(tensor, kernel: np.ndarray, name: str):
    """A bias-free stride-1 'same' ``Conv2D`` with the given (already sub-pixel) kernel."""
    layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], padding="same", use_bias=False, name=name)
    y = layer(tensor)
    layer.set_weights([kernel])
    return y


def _check_upsampler(layer) -> int:
    cfg = layer.get_config()
    strides = tuple(cfg["strides"])
    problems = []
    if strides[0] != strides[1]:
        problems.append(f"strides {strides} differ")
    if cfg["padding"] != "same":
        problems.append(f"padding '{cfg['padding']}' (only 'same' is exact as sub-pixel)")
    if cfg.get("output_padding") not in (None, (0, 0), [0, 0]):
        problems.append("output_padding is set")
    if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
        problems.append("dilation is set")
    if cfg.get("data_format", "channels_last") != "channels_last":
        problems.append("data_format is not channels_last")
    if problems:
        raise UserError(f"cannot rewrite upsampler '{layer.name}': {'; '.join(problems)}")
    return int(strides[0])


def _input_groups(model, up) -> list:
    """The upsampler's input tensors, one per channel group when it reads a channel concatenation."""
    node = up._inbound_nodes[0]
    tensor = node.input_tensors[0]
    producer = tensor._keras_history.operation
    if isinstance(producer, keras.layers.Concatenate) and producer.axis in (-1, 3):
        return list(producer._inbound_nodes[0].input_tensors)
    return [tensor]


def int8_grid_split(kernel: np.ndarray, channel_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``kernel = hi + lo`` with ``hi`` on the symmetric per-channel int8 grid (scale ``max|k|/127``)."""
    axes = tuple(a for a in range(kernel.ndim) if a != channel_axis % kernel.ndim)
    step = np.max(np.abs(kernel), axis=axes, keepdims=True) / 127.0
    hi = np.where(step > 0, np.round(kernel / np.where(step > 0, step, 1.0)) * step, 0.0).astype(np.float32)
    return hi, (kernel - hi).astype(np.float32)


def nearest_kernel(shape: tuple, stride: int, form: str, pad: int = 0) -> np.ndarray:
    """Weights (1 or 0) that make an upsampler a nearest-neighbour upscaler of its single input channel.

    Every output phase of LR pixel ``j`` lies within half a pixel of ``j``, so nearest neighbour reads offset 0:
    the centre tap of a sub-pixel kernel for every phase, or taps ``pad .. pad + r - 1`` of a transposed one
    (layout ``(k, k, 1, 1)``).
    """
    out = np.zeros(shape, np.float32)
    if form == "subpixel":
        out[shape[0] // 2, shape[1] // 2, 0, :] = 1.0
    else:
        out[pad:pad + stride, pad:pad + stride, 0, 0] = 1.0
    return out


def _rescaled_features(tensor, factor: float):
    """``tensor`` (conv → ReLU/PReLU) recomputed by new layers with the conv scaled by ``factor``, or ``None``.

    Both activations are positively homogeneous (``act(c·x) = c·act(x)`` for ``c > 0``), so scaling the conv
    scales the features exactly.
    """
    act = tensor._keras_history.operation
    if not isinstance(act, (keras.layers.ReLU, keras.layers.PReLU)) or getattr(act, "max_value", None):
        return None
    conv_out = act._inbound_nodes[0].input_tensors[0]
    conv = conv_out._keras_history.operation
    if not isinstance(conv, keras.layers.Conv2D) or conv.get_config().get("activation") not in (None, "linear"):
        return None
    cfg = conv.get_config()
    cfg["name"] = f"{conv.name}_rescaled"
    new_conv = keras.layers.Conv2D.from_config(cfg)
    y = new_conv(conv._inbound_nodes[0].input_tensors[0])
    new_conv.set_weights([w * factor for w in conv.get_weights()])
    act_cfg = act.get_config()
    act_cfg["name"] = f"{act.name}_rescaled"
    new_act = type(act).from_config(act_cfg)
    y = new_act(y)
    if act.get_weights():
        new_act.set_weights(act.get_weights())
    return y


def upsampler_feature_max(model, samples) -> float | None:
    """The largest value the upsampler's feature input takes on ``samples`` (float model), for ``_anchored``."""
    try:
        groups = _input_groups(model, model.get_layer(UPSAMPLER_LAYER))
    except ValueError:
        return None
    probe = keras.Model(model.inputs[0], groups[0])
    return max(float(np.max(probe(x))) for x in samples)


def _anchored(model, up, form: str, r: int, feature_max: float | None):
    """One upsampler over the concat with the LR kernel minus nearest neighbour, plus exact nearest neighbour.

    With ``feature_max`` (the features' calibrated maximum) the features are rescaled to 0..1 so the concat's
    int8 grid is the input's 1/255 (CONCATENATION takes one scale; see ``tflite_tools.pin_exact_grids``).
    Returns ``None`` when the upsampler does not read the model input (no interpolation path to anchor).
    """
    kernel, *rest = up.get_weights()
    bias = rest[0] if up.use_bias else None
    groups = _input_groups(model, up)
    model_input = model.inputs[0]
    if len(groups) != 2 or groups[1] is not model_input or int(model_input.shape[-1]) != 1:
        return None
    c_feat = int(groups[0].shape[-1])
    feats = _rescaled_features(groups[0], 1.0 / feature_max) if feature_max and feature_max > 0 else None
    main_k = kernel.copy()
    if feats is None:
        feats = groups[0]
    else:
        main_k[..., :c_feat] *= feature_max
    cfg = up.get_config()
    k = int(cfg["kernel_size"][0])
    n_deconv = nearest_kernel((k, k, 1, 1), r, "deconv", deconv_offset(k, r))
    main_k[..., 0, c_feat] -= n_deconv[..., 0, 0]
    concat = keras.layers.Concatenate(axis=-1, name=NAMES.concat)([feats, model_input])
    if form == "subpixel":
        w, b = subpixel_weights(main_k, bias, r)
        layer = keras.layers.Conv2D(w.shape[-1], w.shape[:2], padding="same", use_bias=b is not None,
                                    name=NAMES.branch(form, "_residual"))
        main = layer(concat)
        layer.set_weights([w, b] if b is not None else [w])
        anchor = _conv_from(model_input, nearest_kernel((1, 1, 1, r * r), r, "subpixel"),
                            NAMES.branch(form, "_nearest"))
    else:
        layer = keras.layers.Conv2DTranspose(1, cfg["kernel_size"], strides=r, padding="same",
                                             use_bias=bias is not None, name=NAMES.branch(form, "_residual"))
        main = layer(concat)
        layer.set_weights([main_k, bias] if bias is not None else [main_k])
        near = keras.layers.Conv2DTranspose(1, cfg["kernel_size"], strides=r, padding="same", use_bias=False,
                                            name=NAMES.branch(form, "_nearest"))
        anchor = near(model_input)
        near.set_weights([n_deconv])
    # The exact branch goes first (see Pins.sum).
    y = keras.layers.Add(name=NAMES.sum())([anchor, main])
    if form == "subpixel":
        y = DepthToSpace(r, name=NAMES.d2s)(y)
    return y


def rewrite_upsampler(model, form: str, split_concat: bool = True, int8_split: bool = False,
                      nearest_anchor: bool = False, feature_max: float | None = None):
    """A new Keras model whose ``upsample`` layer is in ``form`` (shares every other layer with ``model``).

    Args:
        model: a deconv-edge model (ends in the ``Conv2DTranspose`` named ``upsample``).
        form: ``deconv`` (keep ``Conv2DTranspose``) or ``subpixel`` (``Conv2D`` + depth-to-space).
        split_concat: split a ``Concatenate`` feeding the upsampler into per-group convolutions summed by an
            ``Add`` (int8 friendly; see the module docstring). Mathematically the same model.
        int8_split: with ``split_concat``, write the model-input group's weights as ``hi + lo`` (see the module
            docstring); for int8 exports.

    Returns:
        The original ``model`` when nothing changes (``deconv`` without a split), else a new ``keras.Model``.

    Raises:
        UserError: no ``upsample`` layer, it is not the model's output, or its options cannot be rewritten.
    """
    if form not in UPSAMPLERS:
        raise UserError(f"unknown upsampler form '{form}'; valid: {', '.join(UPSAMPLERS)}")
    try:
        up = model.get_layer(UPSAMPLER_LAYER)
    except ValueError:
        raise UserError(f"model '{model.name}' has no '{UPSAMPLER_LAYER}' layer; not a deconv-edge model") from None
    if not isinstance(up, keras.layers.Conv2DTranspose):
        raise UserError(f"layer '{UPSAMPLER_LAYER}' of '{model.name}' is a {type(up).__name__}, not Conv2DTranspose")
    if len(model.outputs) != 1 or model.outputs[0] is not up.output:
        raise UserError(f"the upsampler '{UPSAMPLER_LAYER}' must be the last layer of '{model.name}' to be rewritten")
    r = _check_upsampler(up)
    if nearest_anchor:
        y = _anchored(model, up, form, r, feature_max)
        if y is not None:
            act = keras.activations.get(up.get_config().get("activation"))
            if act is not keras.activations.linear:
                y = keras.layers.Activation(act, name=NAMES.act)(y)
            return keras.Model(model.inputs[0], y, name=f"{model.name}_{form}")
    groups = _input_groups(model, up) if split_concat else [up.input]
    if form == "deconv" and len(groups) == 1:
        return model

    weights = up.get_weights()
    kernel, bias = weights[0], (weights[1] if up.use_bias else None)
    cfg = up.get_config()
    c_out = kernel.shape[2]
    model_input = model.inputs[0]

    def make(tensor, k, b, name):
        if form == "subpixel":
            w, bb = subpixel_weights(k, b, r)
            layer = keras.layers.Conv2D(r * r * c_out, w.shape[:2], padding="same", use_bias=b is not None,
                                        name=NAMES.branch(form, name))
        else:
            w, bb = k, b
            layer = keras.layers.Conv2DTranspose(c_out, cfg["kernel_size"], strides=r, padding="same",
                                                 use_bias=b is not None, name=NAMES.branch(form, name))
        y = layer(tensor)
        layer.set_weights([w, bb] if b is not None else [w])
        return y

    start = 0
    main, residual = [], []
    for g, tensor in enumerate(groups):
        c_in = int(tensor.shape[-1])
        k_g = kernel[..., start:start + c_in]
        start += c_in
        b_g = bias if (g == 0 and bias is not None) else None
        suffix = f"_{g}" if len(groups) > 1 else ""
        if int8_split and len(groups) > 1 and tensor is model_input and b_g is None:
            # Split in the layout the converted layer has, so the grid matches the converter's per-channel one.
            k_eff = subpixel_weights(k_g, None, r)[0] if form == "subpixel" else k_g
            hi, lo = int8_grid_split(k_eff, channel_axis=-1 if form == "subpixel" else 2)
            if form == "subpixel":
                residual.append(_conv_from(tensor, hi, NAMES.branch(form, f"{suffix}_hi")))
                main.append(_conv_from(tensor, lo, NAMES.branch(form, f"{suffix}_lo")))
            else:
                residual.append(make(tensor, hi, None, f"{suffix}_hi"))
                main.append(make(tensor, lo, None, f"{suffix}_lo"))
            continue
        main.append(make(tensor, k_g, b_g, suffix))
    parts = main + residual  # small-range terms first, the large residual last
    if len(parts) == 1:
        y = parts[0]
    else:
        y = parts[0]
        for i, p in enumerate(parts[1:]):
            # The large residual term goes first into its ADD: TFLite's calibrator gives an ADD's first input
            # the output's (image-wide) range, which would coarsen the fine-grained partial sum instead.
            pair = [p, y] if residual and p is residual[-1] else [y, p]
            y = keras.layers.Add(name=NAMES.sum(i if len(parts) > 2 else None))(pair)
    if form == "subpixel":
        y = DepthToSpace(r, name=NAMES.d2s)(y)
    act = keras.activations.get(cfg.get("activation"))
    if act is not keras.activations.linear:
        y = keras.layers.Activation(act, name=NAMES.act)(y)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, y, name=f"{model.name}_{form}")
