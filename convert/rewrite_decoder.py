"""The deconv → sub-pixel rewrite for every ``Conv2DTranspose`` of a model (a denoiser's decoder).

A super-resolution model has one transposed convolution, its ``upsample`` output layer, and
:func:`deconv_edge_convert.rewrite.rewrite_upsampler` handles it with the int8 forms around it. A RED-Net-style
denoiser has two inside its decoder (``up_2``, ``up_1``), each followed by a skip ``Add``. The same identity
applies to each (module docstring of :mod:`deconv_edge_convert.rewrite`): a stride-``r`` 'same'
``Conv2DTranspose`` is a stride-1 'same' ``Conv2D`` with ``r²·C_out`` filters followed by depth-to-space, exact
in float. In TFLite the transposed convolutions of a dynamic-size graph also drag shape arithmetic (SHAPE,
STRIDED_SLICE, PACK) and stay outside XNNPACK; the rewritten graph has none of that.
"""

from __future__ import annotations

import keras

from deconv_edge_core.errors import UserError

from .rewrite import DepthToSpace, _check_upsampler, subpixel_weights


def rewrite_deconvs(model):
    """A new Keras model with every ``Conv2DTranspose`` in sub-pixel form (other layers shared with ``model``).

    Returns:
        ``model`` itself when it has no transposed convolution.

    Raises:
        UserError: a transposed convolution whose options have no exact sub-pixel form, or a model with more
            than one input or output.
    """
    if not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in model.layers):
        return model
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"cannot rewrite '{model.name}': one input and one output expected")
    new = {id(model.inputs[0]): model.inputs[0]}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        # The first node is this model's own call; later ones come from earlier rewrites sharing the layer.
        node = layer._inbound_nodes[0]
        args = [new[id(t)] for t in node.input_tensors]
        if isinstance(layer, keras.layers.Conv2DTranspose):
            y = _subpixel(layer, args[0])
        else:
            y = layer(args[0] if len(args) == 1 else args)
        new[id(node.output_tensors[0])] = y
    return keras.Model(model.inputs[0], new[id(model.outputs[0])], name=f"{model.name}_subpixel")


def _subpixel(layer, tensor):
    r = _check_upsampler(layer)
    weights = layer.get_weights()
    kernel, bias = weights[0], (weights[1] if layer.use_bias else None)
    w, b = subpixel_weights(kernel, bias, r)
    conv = keras.layers.Conv2D(w.shape[-1], w.shape[:2], padding="same", use_bias=bias is not None,
                               name=f"{layer.name}_conv")
    y = conv(tensor)
    conv.set_weights([w, b] if bias is not None else [w])
    y = DepthToSpace(r, name=f"{layer.name}_d2s")(y)
    act = keras.activations.get(layer.get_config().get("activation"))
    if act is not keras.activations.linear:
        y = keras.layers.Activation(act, name=f"{layer.name}_act_fn")(y)
    return y
