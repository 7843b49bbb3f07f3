"""Enhancer: colour handling, sizes, tiling equals a whole-frame run, batching, tampered artifacts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deconv_edge_core.errors import UserError
from edge_runtime.inference.color import bgr_to_ycbcr, ycbcr_to_bgr
from edge_runtime.inference.enhance import Enhancer, tile_spans

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
    assert spans[0][1] == 0 and spans[-1][2] == length
    for (s, a, b), nxt in zip(spans, spans[1:] + [None]):
        assert s <= a < b <= s + tile
        if nxt is not None:
            assert b == nxt[1]
            assert b - s >= halo and s + tile - b >= halo and b - nxt[0] >= halo


@pytest.mark.parametrize("hw", [(7, 9), (16, 16), (40, 23)])
@pytest.mark.parametrize("max_batch", [1, 3])
def test_tiled_run_matches_whole(hw, max_batch):
    """Halo tiling reproduces whole-plane inference of a model with a small receptive field."""
    from edge_runtime.inference.tiling import run_tiled

    lr = np.random.default_rng(0).random(hw).astype(np.float32)

    def box3(x):  # 3x3 mean, x2 nearest: receptive radius 1
        p = np.pad(x[:, :, :, 0], ((0, 0), (1, 1), (1, 1)), mode="constant")
        m = sum(p[:, i:i + x.shape[1], j:j + x.shape[2]] for i in range(3) for j in range(3)) / 9
        return np.repeat(np.repeat(m, 2, 1), 2, 2)[..., None]

    whole = box3(lr[None, :, :, None])[0, :, :, 0]
    tiled = run_tiled(box3, lr, (12, 10), 2, 2, max_batch)
    h, w = hw
    assert tiled.shape == whole.shape == (2 * h, 2 * w)
    if h >= 12 and w >= 10:  # (smaller planes are edge-padded, so their borders differ by design)
        assert np.max(np.abs(tiled - whole)) < 1e-6


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
    from edge_runtime.inference.color import bgr_to_ycbcr

    enhancer = Enhancer(any_model)
    if enhancer._luts is None:
        pytest.skip(f"{any_model.name} has float I/O: no 8-bit path")
    # The tables, exactly: luma byte -> input tensor byte, output tensor byte -> luma byte, per the manifest.
    lut_in, lut_out = enhancer._luts
    levels = np.arange(256, dtype=np.float32)
    spec_in, spec_out = enhancer.manifest.input, enhancer.manifest.output
    lo, hi = enhancer.manifest.value_range
    real = levels * (hi - lo) / 255.0 + lo
    assert np.array_equal(lut_in, enhancer.backend.quantize(real, spec_in))
    back = (enhancer.backend.dequantize(levels.astype(np.uint8), spec_out) - lo) * 255.0 / (hi - lo)
    assert np.array_equal(lut_out, np.clip(np.round(back), 0, 255).astype(np.uint8))
    frame = synthetic_frame(64, 48)
    fast = enhancer(frame)
    enhancer._luts = None
    ref = enhancer(frame)
    assert fast.shape == ref.shape
    # What remains is rounding: uint8 colour conversion moves 5 % of input lumas by one level (which the model
    # amplifies at edges), and chroma is rounded after its resize. A table or zero-point slip shifts every pixel.
    diff = np.abs(fast.astype(int) - ref.astype(int))
    d_luma = np.abs(bgr_to_ycbcr(fast)[..., 0] - bgr_to_ycbcr(ref)[..., 0])
    assert diff.mean() < 1.0 and diff.max() <= 8
    assert d_luma.mean() < 0.75 and np.percentile(d_luma, 99) <= 3


def test_the_runtime_checks_the_embedded_metadata(any_model, tools, tmp_path):
    """The essentials inside the file must agree with the manifest: a hand-edited scale is refused even with
    the right sha256 (before, the embedded copy was read by nothing)."""
    import json

    from deconv_edge_core.embedded import read_embedded
    from deconv_edge_core.manifest import load_manifest

    manifest, artifact = load_manifest(any_model)
    embedded = read_embedded(artifact.read_bytes(), manifest.runtime)
    assert embedded and embedded["scale"] == manifest.scale and embedded["format"] == manifest.format
    copy = tools.copy_artifact(artifact, tmp_path)
    meta_path = copy.with_name(copy.name + ".json")
    meta = json.loads(meta_path.read_text())
    meta["scale"] = 4 if manifest.scale != 4 else 2
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="says otherwise than its manifest.*scale"):
        Enhancer(copy)


def test_litert_keeps_one_interpreter_per_recent_input_shape():
    """A dynamic-size model fed alternating shapes (a colour denoiser: luma, then half-size chroma) keeps an
    interpreter for each instead of re-preparing one at every switch; the oldest is reused past the limit."""
    from edge_runtime.inference.backends.litert import MAX_SHAPES

    e = Enhancer("x2")
    backend = e.backend
    planes = {hw: np.random.default_rng(hw[0]).random((1, *hw, 1), dtype=np.float32)
              for hw in ((24, 32), (12, 16), (20, 20), (16, 12))}
    first = backend.run(planes[(24, 32)])
    interp = backend.interpreter
    backend.run(planes[(12, 16)])
    np.testing.assert_array_equal(backend.run(planes[(24, 32)]), first)
    assert backend.interpreter is interp  # the same one again, not a re-prepared one
    for hw in ((20, 20), (16, 12)):
        backend.run(planes[hw])
    assert len(backend._by_shape) <= MAX_SHAPES
    np.testing.assert_array_equal(backend.run(planes[(24, 32)]), first)  # still right after an eviction
