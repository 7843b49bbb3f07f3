"""The evaluation protocol (PROTOCOL.md): luma, MATLAB bicubic, PSNR/SSIM, and the bicubic reference numbers."""

from __future__ import annotations

import numpy as np
import pytest

from deconv_edge_train.data import NamedImage
from deconv_edge_train.evaluate import bicubic_predictor, evaluate, evaluate_images
from deconv_edge_train.protocol import degrade, imresize, modcrop, psnr_db, quantize_8bit, rgb_to_y

from ..conftest import shared_path


def test_luma_is_matlab_rgb2ycbcr_studio_range():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    y = rgb_to_y(rgb)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16.0 + 65.481], atol=1e-4)


def _matlab_imresize_1d(x: np.ndarray, scale: int) -> np.ndarray:
    """Independent oracle: MATLAB's antialiased cubic contributions for an integer downscale (interior only)."""
    n_out = len(x) // scale
    out = np.zeros(n_out)
    for i in range(n_out):
        centre = (i + 0.5) * scale - 0.5  # output pixel centre in input coordinates
        taps = np.arange(int(np.floor(centre - 2 * scale)), int(np.ceil(centre + 2 * scale)) + 1)
        d = np.abs(taps - centre) / scale
        a = -0.5
        w = np.where(d <= 1, (a + 2) * d**3 - (a + 3) * d**2 + 1,
                     np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0))
        taps = np.clip(taps, 0, len(x) - 1)
        out[i] = np.sum(w * x[taps]) / np.sum(w)
    return out


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pillow_bicubic_is_antialiased_matlab_imresize(scale):
    rng = np.random.default_rng(scale)
    row = rng.uniform(0, 255, 96).astype(np.float32)
    img = np.repeat(row[None, :], 8, axis=0)  # constant along y: the 2-D resize reduces to 1-D
    got = imresize(img, (8 // 1, 96 // scale))[4]
    want = _matlab_imresize_1d(row.astype(np.float64), scale)
    inner = slice(3, -3)  # edges: MATLAB mirrors, Pillow renormalises; PSNR shaves them anyway
    np.testing.assert_allclose(got[inner], want[inner], atol=1e-3)


def test_opencv_cubic_is_a_different_task():
    """OpenCV's INTER_CUBIC does not antialias (PROTOCOL.md): make sure we are not using it."""
    import cv2

    rng = np.random.default_rng(0)
    hr = rng.uniform(0, 255, (64, 64)).astype(np.float32)
    ours = degrade(hr, 4)
    theirs = cv2.resize(hr, (16, 16), interpolation=cv2.INTER_CUBIC)
    assert np.abs(ours - theirs).mean() > 5


def test_evaluator_on_a_synthetic_case_matches_a_direct_computation(image_folder):
    from deconv_edge_train.data import load_image_set

    images = load_image_set([str(image_folder)])
    res = evaluate_images(bicubic_predictor(2), images, 2)
    manual = []
    for img in images:
        hr = rgb_to_y(modcrop(img.rgb, 2))
        up = imresize(degrade(hr, 2), hr.shape)
        d = (quantize_8bit(up) - hr)[2:-2, 2:-2]
        manual.append(10 * np.log10(255**2 / np.mean(d**2)))
    assert res.psnr_db == pytest.approx(float(np.mean(manual)), abs=1e-9)
    assert 0 < res.ssim < 1
    assert len(res.per_image) == 3


def test_identity_predictor_gives_infinite_psnr_and_unit_ssim():
    rgb = np.full((24, 24, 3), 100, np.uint8)
    res = evaluate_images(lambda lr: np.full((lr.shape[0] * 2, lr.shape[1] * 2), rgb_to_y(rgb)[0, 0] / 255.0),
                          [NamedImage("flat", rgb)], 2)
    assert res.ssim == pytest.approx(1.0)
    assert psnr_db(np.zeros((4, 4)), np.zeros((4, 4))) == float("inf")


@pytest.mark.parametrize("scale,set5,set14", [(2, 33.67, 30.33), (3, 30.40, 27.64), (4, 28.43, 26.10)])
def test_bicubic_reference_numbers_on_shared_data(scale, set5, set14):
    res5 = evaluate("bicubic", [str(shared_path("data", "sr", "eval", "set5"))], scale)
    res14 = evaluate("bicubic", [str(shared_path("data", "sr", "eval", "set14"))], scale)
    assert res5.psnr_db == pytest.approx(set5, abs=0.02)
    assert res14.psnr_db == pytest.approx(set14, abs=0.02)


def _picture(h: int = 36, w: int = 42) -> NamedImage:
    rng = np.random.default_rng(7)
    base = np.add.outer(np.linspace(20, 220, h), np.linspace(0, 30, w))
    rgb = np.stack([base, base[::-1], np.full_like(base, 60.0)], -1) + rng.normal(0, 3, (h, w, 3))
    return NamedImage("p.png", np.clip(np.rint(rgb), 0, 255).astype(np.uint8))


def test_the_frame_path_lr_is_each_channel_degraded_in_bgr_order():
    from deconv_edge_train.evaluate import frame_lr_bgr

    img = _picture()
    lr = frame_lr_bgr(img, 3)
    hr = modcrop(img.rgb, 3).astype(np.float32)
    assert lr.dtype == np.uint8 and lr.shape == (12, 14, 3)
    for c in range(3):  # BGR: channel 0 is the picture's blue
        np.testing.assert_array_equal(lr[..., 2 - c], quantize_8bit(degrade(hr[..., c], 3)))


def test_the_frame_path_scores_the_output_luma_against_the_ground_truth():
    from deconv_edge_core.errors import UserError
    from deconv_edge_train.evaluate import evaluate_frames

    img = _picture()
    hr_bgr = np.ascontiguousarray(modcrop(img.rgb, 2)[..., ::-1])
    # Handing back the ground truth scores only the 8-bit rounding of its own luma (> 50 dB); one level
    # brighter in every channel moves Y by 219/255 of a level, and the score must say so.
    exact = evaluate_frames(lambda lr: hr_bgr, [img], 2)
    assert exact.psnr_db > 50 and exact.ssim > 0.99
    brighter_bgr = (hr_bgr.astype(np.int16) + 1).clip(0, 255).astype(np.uint8)
    brighter = evaluate_frames(lambda lr: brighter_bgr, [img], 2)
    y_true = rgb_to_y(modcrop(img.rgb, 2))
    y_out = quantize_8bit(rgb_to_y(np.ascontiguousarray(brighter_bgr[..., ::-1])))
    assert brighter.psnr_db == pytest.approx(psnr_db(y_out, y_true, 2), abs=1e-9)
    assert 40 < brighter.psnr_db < exact.psnr_db - 3
    seen = []
    evaluate_frames(lambda lr: seen.append(lr.shape) or hr_bgr, [img], 2)
    assert seen == [(18, 21, 3)]
    with pytest.raises(UserError, match="is not x2 uint8 BGR"):
        evaluate_frames(lambda lr: hr_bgr[:-2], [img], 2)
