"""Data pipeline: LR/HR alignment, augmentation, and the bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest

from deconv_edge_core.errors import UserError
from deconv_edge_train.data import NamedImage, PatchSampler, load_image_set
from deconv_edge_train.protocol import degrade

from ..conftest import write_images


def _grey(h: int, w: int, seed: int = 0) -> NamedImage:
    rng = np.random.default_rng(seed)
    g = (rng.random((h, w)) * 255).astype(np.uint8)
    return NamedImage("rand", np.repeat(g[..., None], 3, axis=2))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_patch_pairs_are_aligned_through_flips_and_rotations(scale):
    sampler = PatchSampler([_grey(96, 120)], scale, lr_patch=12, batch_size=16, jitter=(1.0,), seed=scale)
    lr, hr = sampler.sample()
    assert lr.shape == (16, 12, 12, 1) and hr.shape == (16, 12 * scale, 12 * scale, 1)
    for k in range(16):
        # Degrading the HR patch on its own reproduces the LR patch away from the crop border.
        again = degrade(hr[k, ..., 0] * 255.0, scale) / 255.0
        np.testing.assert_allclose(again[3:-3, 3:-3], lr[k, 3:-3, 3:-3, 0], atol=2e-3)


def test_known_pattern_lands_where_it_should():
    hr = np.zeros((64, 64, 3), np.uint8)
    hr[32:40, 16:24] = 255  # a white 8x8 block at HR (32, 16)
    sampler = PatchSampler([NamedImage("block", hr)], 2, lr_patch=32, batch_size=1, jitter=(1.0,))
    lr, hr_y = sampler.pairs[0]
    ys, xs = np.nonzero(lr > lr.max() * 0.5)
    assert (ys.mean(), xs.mean()) == pytest.approx((17.5, 9.5), abs=0.01)  # LR centre of HR rows 32..39, cols 16..23
    ys, xs = np.nonzero(hr_y > 0.5)
    assert (ys.mean(), xs.mean()) == pytest.approx((35.5, 19.5))


def test_scale_jitter_adds_pairs():
    plain = PatchSampler([_grey(96, 96)], 2, 16, 4, jitter=(1.0,))
    jittered = PatchSampler([_grey(96, 96)], 2, 16, 4)
    assert len(jittered.pairs) > len(plain.pairs) == 1


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_image_set([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no image"):
        load_image_set([str(tmp_path / "empty")])


def test_unreadable_image(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read image"):
        load_image_set([str(tmp_path)])


def test_images_smaller_than_a_patch(tmp_path):
    images = load_image_set([str(write_images(tmp_path / "tiny", n=2, size_hw=(20, 20)))])
    with pytest.raises(UserError, match="smaller than one training patch"):
        PatchSampler(images, 4, lr_patch=16, batch_size=2)


def test_grey_and_colour_both_load(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(tmp_path / "c.jpg")
    imgs = load_image_set([str(tmp_path)])
    assert [i.rgb.shape for i in imgs] == [(30, 30, 3), (30, 30, 3)]


def test_builtin_photos_load_offline():
    pytest.importorskip("skimage")
    imgs = load_image_set(["builtin"])
    assert len(imgs) >= 5 and all(i.rgb.ndim == 3 for i in imgs)
