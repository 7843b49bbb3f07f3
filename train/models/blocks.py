"""Re-parameterised training blocks that collapse exactly into one plain ``Conv2D`` for export.

A :class:`CollapsibleConv2D` holds an over-parameterised *linear* block (SESR's collapsible linear block,
Bhardwaj et al. 2022, with a RepVGG-style identity branch): a ``k×k`` convolution expanded to ``E`` channels,
a ``1×1`` projection back to ``filters``, and (when ``filters`` equals the input channels) the identity. All
branches are linear, so their sum is one ``k×k`` convolution with

    K[h, w, i, o] = Σ_e W1[h, w, i, e] · W2[e, o]  (+ 1 at the centre tap where i == o)
    b[o]          = Σ_e b1[e] · W2[e, o] + b2[o]

The layer computes ``K`` and ``b`` from its expanded weights at every call and runs that one convolution
("collapsed training"): the forward pass costs what inference costs, and the gradient reaches the expanded
weights through the two small products. :func:`collapse_model` turns a trained model into stock ``Conv2D``
layers with the same names, so converters never see this class.

Everything is written with ``keras.ops``, so the block trains on any Keras 3 backend (TensorFlow, JAX).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="deconv_edge")
class CollapsibleConv2D(keras.layers.Layer):
    """A linear ``k×k`` conv block trained expanded, run collapsed (see the module docstring).

    Args:
        filters: output channels.
        kernel_size: odd spatial size ``k``.
        expansion: width ``E`` of the expanded branch.
        identity: add the identity branch (needs ``filters`` == input channels); ``None`` = when possible.
        seed: initialiser seed.
    """

    def __init__(self, filters: int, kernel_size: int, expansion: int = 64, identity=None, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, not {kernel_size}")
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.expansion, self.identity, self.seed = int(expansion), identity, int(seed)

    def build(self, input_shape):
        cin = int(input_shape[-1])
        k, e, f = self.kernel_size, self.expansion, self.filters
        self.use_identity = (cin == f) if self.identity is None else bool(self.identity)
        if self.use_identity and cin != f:
            raise ValueError(f"identity branch needs {f} input channels, got {cin}")
        # Fan-in scaling for the k×k part and 1/E for the projection keep the collapsed kernel at He scale.
        self.w1 = self.add_weight(name="expand_kernel", shape=(k, k, cin, e),
                                  initializer=keras.initializers.HeNormal(seed=self.seed))
        self.b1 = self.add_weight(name="expand_bias", shape=(e,), initializer="zeros")
        self.w2 = self.add_weight(name="project_kernel", shape=(e, f),
                                  initializer=keras.initializers.RandomNormal(stddev=(1.0 / e) ** 0.5,
                                                                              seed=self.seed + 1))
        self.b2 = self.add_weight(name="project_bias", shape=(f,), initializer="zeros")
        eye = np.zeros((k, k, cin, f), np.float32)
        if self.use_identity:
            eye[k // 2, k // 2] = np.eye(f, dtype=np.float32)
        self._eye = eye

    def collapsed(self):
        """The one ``(kernel, bias)`` this block computes, as backend tensors."""
        kernel = ops.einsum("hwie,eo->hwio", self.w1, self.w2) + ops.convert_to_tensor(self._eye)
        bias = ops.matmul(ops.expand_dims(self.b1, 0), self.w2)[0] + self.b2
        return kernel, bias

    def call(self, x):
        kernel, bias = self.collapsed()
        return ops.conv(x, kernel, strides=1, padding="same") + bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=self.kernel_size, expansion=self.expansion,
                   identity=self.identity, seed=self.seed)
        return cfg


def collapsed_weights(layer: CollapsibleConv2D) -> list[np.ndarray]:
    """``[kernel, bias]`` of the plain ``Conv2D`` equal to ``layer``."""
    kernel, bias = layer.collapsed()
    return [np.asarray(ops.convert_to_numpy(kernel), np.float32), np.asarray(ops.convert_to_numpy(bias), np.float32)]


def has_collapsible(model) -> bool:
    """Whether ``model`` holds any re-parameterised block."""
    return any(isinstance(layer, CollapsibleConv2D) for layer in model.layers)


def collapse_model(model):
    """A copy of ``model`` where every :class:`CollapsibleConv2D` is a stock ``Conv2D`` of the same name.

    Other layers are rebuilt from their configs and get the same weights; the graph (a functional model) is
    replayed node by node, so the result computes the same function (to float rounding, ~1e-6).
    Returns ``model`` itself when there is nothing to collapse.
    """
    if not has_collapsible(model):
        return model

    def clone(layer):
        if isinstance(layer, CollapsibleConv2D):
            return keras.layers.Conv2D(layer.filters, layer.kernel_size, padding="same", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=clone)
    for src, dst in zip(model.layers, plain.layers):
        if isinstance(src, CollapsibleConv2D):
            dst.set_weights(collapsed_weights(src))
        elif src.get_weights():
            dst.set_weights(src.get_weights())
    return plain
