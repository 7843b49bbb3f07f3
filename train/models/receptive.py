"""The receptive radius and the cost of a Keras image model, from its layers (no guessing from the model's name).

The runtime tiles large frames with a halo; a tile is exact only if its halo covers the receptive radius, the
farthest input pixel any output pixel depends on. It is computed here by walking the functional graph:
a ``Conv2D`` of kernel ``k``, stride ``s`` and dilation ``r`` adds ``ceil((k-1)/2)·r`` of its input's pixels;
a ``Conv2DTranspose`` adds ``ceil((k-1)/2)`` of its *output's* pixels (each output pixel sees the inputs within
``(k-1)/2`` output steps); merges take the largest radius. Radii and pixel steps are counted in the model's
input pixels.
"""

from __future__ import annotations

import math


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _inputs_of(layer) -> list:
    tensors = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    return [t._keras_history.operation.name for t in tensors]


def _walk(model):
    """``(layer, input names, pixel step of its input, of its output)`` in graph order; steps in model input pixels."""
    import keras

    step: dict = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            step[layer.name] = 1.0
            continue
        ins = _inputs_of(layer)
        j_in = step[ins[0]]
        if isinstance(layer, keras.layers.Conv2DTranspose):
            j_out = j_in / int(max(layer.strides))
        elif hasattr(layer, "kernel_size"):
            j_out = j_in * int(max(_pair(getattr(layer, "strides", 1))))
        elif hasattr(layer, "block_size"):
            j_out = j_in / int(layer.block_size)
        else:
            j_out = j_in
        step[layer.name] = j_out
        yield layer, ins, j_in, j_out


def macs_per_input_pixel(model) -> int:
    """Multiply-accumulates per pixel of the model's input: each convolution's MACs per output pixel times its
    output pixels per input pixel (a stride-2 level costs a quarter); a ``Conv2DTranspose`` scatters ``k²`` taps
    from each of its input pixels. For the SR models (everything at low resolution) this is the MACs per LR pixel."""
    import keras

    total = 0.0
    for layer, _, j_in, j_out in _walk(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw = layer.kernel_size
            total += kh * kw * int(layer.kernel.shape[-1]) * int(layer.filters) / (j_in * j_in)
        elif hasattr(layer, "kernel_size") and hasattr(layer, "filters"):
            kh, kw = _pair(layer.kernel_size)
            c_in = int(layer.input.shape[-1])
            total += kh * kw * c_in * int(layer.filters) / (j_out * j_out)
    return int(round(total))


def receptive_radius_px(model) -> int:
    """The largest distance, in input pixels, from an output pixel to an input pixel it depends on.

    Args:
        model: a functional Keras model over images (one input).

    Returns:
        The radius, rounded up (0 for a per-pixel model).
    """
    import keras

    radius: dict = {}
    step: dict = {}  # input pixels per pixel of the layer's output
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            radius[layer.name], step[layer.name] = 0.0, 1.0
            continue
        ins = _inputs_of(layer)
        r_in = max(radius[n] for n in ins)
        j_in = step[ins[0]]
        if isinstance(layer, keras.layers.Conv2DTranspose):
            k, s = int(max(layer.kernel_size)), int(max(layer.strides))
            j_out = j_in / s
            r_out = r_in + math.ceil((k - 1) / 2) * j_out
        elif hasattr(layer, "kernel_size"):  # Conv2D, and the re-parameterised training blocks
            k = int(max(_pair(layer.kernel_size)))
            s = int(max(_pair(getattr(layer, "strides", 1))))
            dil = int(max(_pair(getattr(layer, "dilation_rate", 1))))
            r_out = r_in + math.ceil((k - 1) / 2) * dil * j_in
            j_out = j_in * s
        elif type(layer).__name__ == "DepthToSpace" or hasattr(layer, "block_size"):
            j_out, r_out = j_in / int(layer.block_size), r_in
        else:  # activations, adds, concatenations: per pixel
            r_out, j_out = r_in, j_in
        radius[layer.name], step[layer.name] = r_out, j_out
    return int(math.ceil(radius[model.layers[-1].name]))
