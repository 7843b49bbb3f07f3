"""Denoising on the device side without TensorFlow: the noisy demo scene and the denoise manifest's rules."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from deconv_edge_core.errors import UserError
from deconv_edge_core.manifest import Manifest, load_manifest
from edge_runtime.inference.default_model import MODELS_DIR
from edge_runtime.video.sources import open_source


def _frames(uri: str, n: int = 3) -> list:
    src = open_source(uri)
    src.open()
    try:
        return [src.read() for _ in range(n)]
    finally:
        src.close()


def test_demo_noise_adds_gaussian_noise_of_that_sigma():
    clean = _frames("demo://?size=160x120&fps=1000")
    noisy = _frames("demo://?size=160x120&fps=1000&noise=25")
    for c, n in zip(clean, noisy):
        diff = n.astype(np.float64) - c
        # Clipping at 0 and 255 takes a little off; the scene's mid-tones keep most of it.
        assert 20 < diff.std() < 26, diff.std()
        assert abs(diff.mean()) < 2
    assert not np.array_equal(noisy[0], noisy[1])  # fresh noise every frame, like a sensor


@pytest.mark.parametrize("value", ["-1", "101", "nan", "loud"])
def test_demo_noise_out_of_range_is_one_line(value):
    with pytest.raises(UserError, match="noise"):
        open_source(f"demo://?noise={value}")


def _denoise_dict() -> dict:
    """A valid denoise manifest, made from a shipped SR manifest with the denoiser's fields."""
    path = sorted(MODELS_DIR.glob("*_int8.tflite.json"))[0]
    d = json.loads(path.read_text())
    d.update(task="denoise", scale=1, upsampler="deconv",
             noise={"model": "awgn", "sigma_range": [0, 50], "level_input": True, "size_multiple": 4})
    d["input"] = dict(d["input"], shape=[1, None, None, 2])
    d["output"] = dict(d["output"], shape=[1, None, None, 1])
    return d


def test_a_denoise_manifest_round_trips():
    m = Manifest.from_dict(_denoise_dict())
    assert (m.task, m.scale, m.input_channels) == ("denoise", 1, 2)
    again = Manifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    wide = Manifest.from_dict(dict(_denoise_dict(), receptive_radius_px=29))
    assert wide.to_dict()["receptive_radius_px"] == 29 and Manifest.from_dict(wide.to_dict()) == wide
    assert "receptive_radius_px" not in m.to_dict()  # not recorded: the manifest stays as older ones were
    from edge_runtime.inference.enhance import default_halo

    assert default_halo("denoise", None, 4) == 24 and default_halo("denoise", 29, 4) == 32
    assert default_halo("super-resolution", 8) == 12  # never below the task's halo
    sr, _ = load_manifest(sorted(MODELS_DIR.glob("*_int8.tflite"))[0])
    assert sr.noise is None and "noise" not in sr.to_dict() and sr.input_channels == 1


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(scale=2), "scale 2 not in (1,) for denoise"),
    (lambda d: d.pop("noise"), "needs its 'noise' block"),
    (lambda d: d.update(task="deblur"), "task 'deblur' not in"),
    (lambda d: d["noise"].update(sigma_range=[0, 900]), "noise.sigma_range"),
    (lambda d: d["noise"].update(model="rain"), "noise.model 'rain'"),
    (lambda d: d.update(input=dict(d["input"], shape=[1, None, None, 1])), "noise-level map (2 channels)"),
    (lambda d: d.update(task="super-resolution", scale=2, noise=None), "one (luma) channel"),
    (lambda d: d.update(receptive_radius_px=-3), "receptive_radius_px -3 must be a whole number"),
    (lambda d: d.update(receptive_radius_px=10**9), "receptive_radius_px 1000000000 must be"),
    (lambda d: d.update(receptive_radius_px="wide"), "receptive_radius_px wide must be"),
])
def test_denoise_manifest_lies_are_refused(change, message):
    d = _denoise_dict()
    change(d)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Manifest.from_dict(d)


def test_manifest_noise_field_is_frozen():
    m = Manifest.from_dict(_denoise_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.noise.level_input = False
