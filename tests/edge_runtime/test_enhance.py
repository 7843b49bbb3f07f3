"""Enhancer: colour handling, sizes, tiling equals a whole-frame run, batching, tampered artifacts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_runtime.color import bgr_to_ycbcr, ycbcr_to_bgr
from edge_runtime.enhance import Enhancer, tile_spans
from edge_runtime.errors import UserError

from .conftest import FIXED_TILE, TEST_HALO, copy_artifact, synthetic_frame


def test_studio_range_luma_matches_protocol():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    r, g, b = (bgr[..., i].astype(np.float64) for i in (2, 1, 0))
    y_ref = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    ycc = bgr_to_ycbcr(bgr)
    assert np.abs(ycc[..., 0] - y_ref).max() < 1e-3
    assert ycc[..., 0].min() >= 16 - 1e-3 and ycc[..., 0].max() <= 235 + 1e-3
    # Not OpenCV's full-range conversion.
    assert np.abs(ycc[..., 0] - cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[..., 0]).max() > 5
    assert np.array_equal(ycbcr_to_bgr(ycc), bgr)


@pytest.mark.parametrize("length,tile,halo", [(100, 32, 6), (33, 32, 6), (32, 32, 6), (10, 32, 6), (200, 48, 12)])
def test_tile_spans_partition_with_context(length, tile, halo):
    spans = tile_spans(length, tile, halo)
    assert spans[0][1] == 0 and spans[-1][2] == min(length, length)
    for (s, a, b), nxt in zip(spans, spans[1:] + [None]):
        assert s <= a < b <= s + tile
        if nxt is not None:
            assert b == nxt[1]
            assert b - s >= halo and s + tile - b >= halo and b - nxt[0] >= halo


def test_untrained_model_is_close_to_bicubic(tf_artifacts):
    frame = synthetic_frame(64, 48)
    enhancer = Enhancer(tf_artifacts.dynamic)
    out = enhancer(frame)
    assert out.shape == (96, 128, 3) and out.dtype == np.uint8
    bic = enhancer.bicubic(frame)
    # Chroma is bicubic and the luma path is near-bicubic: a colour or range mistake would be far off.
    assert cv2.PSNR(out[4:-4, 4:-4], bic[4:-4, 4:-4]) > 30
    assert set(enhancer.last_timing_ms) == {"preprocess", "invoke", "postprocess"}


def test_grey_and_bgra_frames(tf_artifacts):
    enhancer = Enhancer(tf_artifacts.dynamic)
    grey = synthetic_frame(40, 30)[..., 1]
    assert enhancer(grey).shape == (60, 80, 3)
    bgra = cv2.cvtColor(synthetic_frame(40, 30), cv2.COLOR_BGR2BGRA)
    assert enhancer(bgra).shape == (60, 80, 3)
    with pytest.raises(ValueError):
        enhancer(np.zeros((4, 4, 3), np.float32))


@pytest.mark.parametrize("w,h", [(150, 90), (37, 21)])
def test_fixed_shape_tiles_match_whole_frame(tf_artifacts, w, h):
    """A fixed-shape artifact (tiled, batched) gives the whole-frame result away from the frame borders."""
    frame = synthetic_frame(w, h, seed=3)
    whole = Enhancer(tf_artifacts.dynamic)
    tiled = Enhancer(tf_artifacts.fixed, halo=TEST_HALO)
    assert tiled.tile == FIXED_TILE and tiled.max_batch > 1
    y = bgr_to_ycbcr(frame)[..., 0] / 255.0
    ref, got = whole.upscale_y(y), tiled.upscale_y(y)
    assert got.shape == ref.shape == (2 * h, 2 * w)
    m = 2 * TEST_HALO  # HR pixels: where padding of a frame smaller than a tile can reach
    assert np.abs(got[m:-m, m:-m] - ref[m:-m, m:-m]).max() < 1e-4
    if w >= FIXED_TILE[1] and h >= FIXED_TILE[0]:
        # No padding at all: equal everywhere, frame borders included.
        assert np.abs(got - ref).max() < 1e-4
    # Without enough halo the seams show: the test can fail.
    seams = Enhancer(tf_artifacts.fixed, halo=0).upscale_y(y)
    if w > FIXED_TILE[1]:
        assert np.abs(seams - ref).max() > 1e-3
    # Batched and one-tile-per-call runs agree.
    single = Enhancer(tf_artifacts.fixed, halo=TEST_HALO, max_batch=1)
    assert np.abs(single.upscale_y(y) - got).max() < 1e-5


def test_dynamic_artifact_tiles_on_request(tf_artifacts):
    frame = synthetic_frame(120, 80, seed=4)
    whole = Enhancer(tf_artifacts.dynamic)(frame)
    tiled = Enhancer(tf_artifacts.dynamic, tile=(40, 40), halo=TEST_HALO)(frame)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_int8_artifact_any_frame_size(tf_artifacts):
    frame = synthetic_frame(100, 70, seed=5)
    enhancer = Enhancer(tf_artifacts.int8, halo=TEST_HALO)
    out = enhancer(frame)
    assert out.shape == (140, 200, 3)
    assert enhancer.describe()["format"] == "tflite-int8"
    # Quantized, still close to the float model.
    ref = Enhancer(tf_artifacts.dynamic)(frame)
    assert cv2.PSNR(out[8:-8, 8:-8], ref[8:-8, 8:-8]) > 30


def test_onnx_artifact(tf_artifacts):
    pytest.importorskip("onnxruntime")
    frame = synthetic_frame(64, 48)
    out = Enhancer(tf_artifacts.onnx)(frame)
    ref = Enhancer(tf_artifacts.dynamic)(frame)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_wrong_tile_for_fixed_artifact(tf_artifacts):
    with pytest.raises(UserError, match="takes 32x48 inputs only"):
        Enhancer(tf_artifacts.fixed, tile=(64, 64))
    with pytest.raises(UserError, match="too small for a halo"):
        Enhancer(tf_artifacts.fixed, halo=20)


def test_tampered_artifact_refused(any_model, tmp_path):
    art = copy_artifact(any_model, tmp_path)
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its manifest"):
        Enhancer(art)


def test_shipped_model_enhances(any_model):
    enhancer = Enhancer(any_model)
    frame = synthetic_frame(96, 64)
    out = enhancer(frame)
    assert out.shape == (64 * enhancer.scale, 96 * enhancer.scale, 3)
    assert cv2.PSNR(out, enhancer.bicubic(frame)) > 25


def test_byte_path_matches_float_path(any_model):
    """uint8-I/O artifacts run the frame in bytes (LUTs, uint8 colour/resize); it must agree with float."""
    enhancer = Enhancer(any_model)
    if enhancer._luts is None:
        pytest.skip(f"{any_model.name} has float I/O: no 8-bit path")
    frame = synthetic_frame(64, 48)
    fast = enhancer(frame).astype(int)
    enhancer._luts = None
    ref = enhancer(frame).astype(int)
    diff = np.abs(fast - ref)
    # Only roundings differ (luma rounded before the model, chroma rounded after the resize).
    assert fast.shape == ref.shape and diff.mean() < 1.5 and diff.max() <= 12
