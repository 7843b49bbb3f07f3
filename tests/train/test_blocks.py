"""Re-parameterised blocks: the expanded training form collapses exactly into stock layers."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from deconv_edge_train.models import ModelConfig, build_model, names_for  # noqa: E402
from deconv_edge_train.models.blocks import CollapsibleConv2D, collapse_model, has_collapsible  # noqa: E402

STOCK = (keras.layers.InputLayer, keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.ReLU,
         keras.layers.PReLU, keras.layers.Concatenate)


def _randomise(model, seed: int = 0):
    """Weights far from the start (the start is bicubic, which would hide a wrong collapse)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()])


def _collapsible_models():
    return [n for n in names_for("super-resolution") if has_collapsible(build_model(ModelConfig(name=n, scale=2, d=8, s=4, m=1)))]


def test_some_model_is_reparameterised():
    assert _collapsible_models(), "no model in the registry uses CollapsibleConv2D"


@pytest.mark.parametrize("name", _collapsible_models())
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("activation", ["relu", "prelu"])
def test_expanded_equals_collapsed(name, scale, activation):
    model = build_model(ModelConfig(name=name, scale=scale, activation=activation, d=8, s=12, m=2))
    _randomise(model, scale)
    plain = collapse_model(model)
    assert not has_collapsible(plain)
    assert all(isinstance(layer, STOCK) for layer in plain.layers), [type(la).__name__ for la in plain.layers]
    assert [la.name for la in plain.layers] == [la.name for la in model.layers]
    x = np.random.default_rng(7).random((2, 17, 13, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(plain(x)), np.asarray(model(x)), atol=1e-5)
    # The export has only the inference cost: far fewer parameters than the expanded form.
    assert plain.count_params() < model.count_params()


def test_block_collapse_matches_the_branches_computed_apart():
    """K = W1·W2 + identity, b = b1·W2 + b2: checked against running the three branches separately."""
    rng = np.random.default_rng(3)
    layer = CollapsibleConv2D(6, 3, expansion=10, identity=True)
    x = rng.random((1, 9, 11, 6), dtype=np.float32)
    layer(x)
    layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    w1, b1, w2, b2 = layer.get_weights()
    expanded = keras.ops.conv(x, w1, padding="same") + b1
    branches = np.einsum("nhwe,eo->nhwo", np.asarray(expanded), w2) + b2 + x
    np.testing.assert_allclose(np.asarray(layer(x)), branches, atol=1e-5)


def test_identity_needs_matching_channels():
    with pytest.raises(ValueError, match="identity"):
        CollapsibleConv2D(4, 3, identity=True)(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="odd"):
        CollapsibleConv2D(4, 2)


def test_expanded_model_saves_and_loads_in_safe_mode(tmp_path):
    model = build_model(ModelConfig(name="sesr", scale=2, d=8, s=4, m=1))
    _randomise(model)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(1).random((1, 12, 12, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
