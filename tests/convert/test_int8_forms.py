"""The int8 forms of the upsampler as explicit objects: the rewrite names what the pinning must pin, and the
selection keeps the file closer to float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deconv_edge_convert import int8_forms
from deconv_edge_convert.int8_forms import (
    NAMES,
    NEAREST_ANCHOR,
    SPLIT,
    Candidate,
    Pins,
    choose,
    tensor_of_layer,
)

from .conftest import tiny_model


def test_tensor_names_are_matched_to_the_layer_exactly():
    assert tensor_of_layer("fsrcnn_x2_subpixel_1/upsample_conv_nearest_1/convolution", "upsample_conv_nearest")
    assert tensor_of_layer("a/upsample_nearest/conv;b/upsample_sum/Add", "upsample_nearest")
    assert not tensor_of_layer("m/upsample_conv_nearest_1/convolution", "upsample_nearest")  # another layer
    assert not tensor_of_layer("m/upsample_conv_1_hi/convolution", "upsample_conv_1")
    assert not tensor_of_layer("m/upsample_conv_nearest/convolution", None)


@pytest.mark.parametrize("upsampler", ["deconv", "subpixel"])
def test_each_form_names_its_own_pins(upsampler):
    model = tiny_model(2)
    calib = [np.random.default_rng(0).random((1, 12, 12, 1)).astype(np.float32)]
    split = SPLIT.rewrite(model, upsampler, calib)
    anchored = NEAREST_ANCHOR.rewrite(model, upsampler, calib)
    assert split.pins == Pins() and split.form is SPLIT
    assert anchored.pins == Pins(nearest=NAMES.branch(upsampler, "_nearest"), sum=NAMES.sum())
    names = [layer.name for layer in anchored.model.layers]
    assert anchored.pins.nearest in names and anchored.pins.sum in names
    add = anchored.model.get_layer(anchored.pins.sum)
    first = add._inbound_nodes[0].input_tensors[0]._keras_history.operation
    assert first.name == anchored.pins.nearest  # the exact branch is the ADD's first input (Pins.sum)


def test_choose_keeps_the_smaller_error_and_the_split_on_a_tie():
    a, b = Candidate(SPLIT, Path("a"), None, 2e-5), Candidate(NEAREST_ANCHOR, Path("b"), None, 1e-5)
    best, note = choose([a, b])
    assert best is b and note == "int8 upsampler: nearest_anchor (calibration MSE vs float: split 2e-05, nearest anchor 1e-05)"
    best, _ = choose([a, Candidate(NEAREST_ANCHOR, Path("b"), None, 2e-5)])
    assert best is a


def test_pinning_follows_the_pins(tmp_path, test_config):
    """The nearest branch goes on the input's 1/255 grid only when the rewrite's pins name it."""
    from ai_edge_litert.interpreter import Interpreter

    from deconv_edge_convert import tflite_tools
    from deconv_edge_convert.calibration import build_calibration, load_images

    model = tiny_model(2)
    calib = build_calibration(load_images(["builtin"], "calibration"), 2, (24, 24), 8, 0, "builtin")
    anchored = NEAREST_ANCHOR.rewrite(model, "subpixel", calib)
    data = tflite_tools.convert(anchored.model, (1, None, None, 1), mode="int8",
                                representative=calib.representative_dataset())

    def nearest_scale(flatbuffer: bytes) -> float:
        """Output scale of the CONV_2D that computes the nearest branch."""
        it = Interpreter(model_content=flatbuffer)
        it.allocate_tensors()
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        (out,) = [tensors[op["outputs"][0]] for op in it._get_ops_details() if op["op_name"] == "CONV_2D"
                  and tensor_of_layer(tensors[op["outputs"][0]]["name"], anchored.pins.nearest)]
        return out["quantization"][0]

    pinned = tflite_tools.pin_exact_grids(data, anchored.pins)
    unpinned = tflite_tools.pin_exact_grids(data, Pins())
    assert nearest_scale(pinned) == pytest.approx(1 / 255, rel=1e-6)
    assert nearest_scale(unpinned) != pytest.approx(1 / 255, rel=1e-3)
    assert int8_forms.FORMS == (SPLIT, NEAREST_ANCHOR)
