"""Shared test helpers: where ../shared lives, and small image folders made at test time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Model picks measured by a user's own 'bench --pick' must not change what the tests run (edge_runtime.inference.picks).
import tempfile  # noqa: E402

os.environ["DECONV_EDGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="dce-test-cache-")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (the ../shared data beside the checkout); absent here")
    return p


def write_images(folder: Path, n: int = 3, size_hw=(72, 88), seed: int = 0) -> Path:
    """Write ``n`` smooth-but-textured colour PNGs (natural-ish statistics, deterministic)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size_hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for i in range(n):
        img = np.zeros((h, w, 3))
        for c in range(3):
            fx, fy, ph = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4), rng.uniform(0, 6.28)
            img[..., c] = 128 + 60 * np.sin(fx * xx + ph) * np.cos(fy * yy) + rng.normal(0, 12, (h, w))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img_{i:03d}.png")
    return folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_images(tmp_path / "images")
