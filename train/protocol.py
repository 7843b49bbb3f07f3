"""The SR quality protocol of ``../shared/PROTOCOL.md`` (SRCNN/FSRCNN/VDSR/EDSR papers).

1. Ground truth read as RGB (grey replicated), modcropped to a multiple of the scale.
2. Luma by MATLAB ``rgb2ycbcr`` (BT.601 studio range).
3. Low resolution by MATLAB-style antialiased bicubic ``imresize`` (Pillow ``BICUBIC`` on an ``"F"`` image).
4. Model output rounded to 8 bits.
5. PSNR / SSIM on Y with ``scale`` pixels shaved from every border.

Everything works on float32 luma in 0..255 unless a name says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import IMAGE_SUFFIXES

VALID_SCALES = (2, 3, 4)


def check_scale(scale: int) -> int:
    """Return ``scale`` as int or raise a :class:`UserError` naming the valid scales."""
    if int(scale) not in VALID_SCALES:
        raise UserError(f"scale {scale} is not supported; use one of {', '.join(map(str, VALID_SCALES))}")
    return int(scale)


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files directly inside ``folder``.

    Raises:
        UserError: the folder is missing or holds no image.
    """
    path = Path(folder)
    if not path.is_dir():
        raise UserError(f"data folder '{folder}' does not exist (give a folder of .png/.jpg/.bmp images)")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"data folder '{folder}' holds no image (.png/.jpg/.bmp expected)")
    return files


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3); grey is replicated, alpha dropped.

    Raises:
        UserError: the file cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I", "F"):
                arr = np.asarray(img, dtype=np.float64)
                arr = np.clip(arr / max(arr.max(), 1.0) * 255.0, 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UserError(f"cannot read image '{path}': {exc.__class__.__name__}: {exc}") from None


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of uint8 RGB: float32 in 16..235 (not rounded)."""
    rgb = rgb.astype(np.float64)
    y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    return y.astype(np.float32)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width down to a multiple of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def imresize(y: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """MATLAB-style bicubic resize (a = -0.5, antialiased when shrinking) of a float image.

    Pillow's BICUBIC on mode "F" stretches the kernel by the scale when shrinking, exactly like
    MATLAB's ``imresize``; OpenCV's INTER_CUBIC does not (see PROTOCOL.md).
    """
    from PIL import Image

    h, w = size_hw
    img = Image.fromarray(np.ascontiguousarray(y, dtype=np.float32), mode="F")
    return np.asarray(img.resize((int(w), int(h)), Image.BICUBIC), dtype=np.float32)


def degrade(hr_y: np.ndarray, scale: int) -> np.ndarray:
    """Low-resolution luma of a modcropped high-resolution luma (float, same range)."""
    h, w = hr_y.shape
    return imresize(hr_y, (h // scale, w // scale))


def quantize_8bit(y: np.ndarray) -> np.ndarray:
    """Round to what a device shows: clip 0..255, round (float64 result)."""
    return np.round(np.clip(np.asarray(y, dtype=np.float64), 0.0, 255.0))


def shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border > 0 else img


def psnr_db(pred: np.ndarray, ref: np.ndarray, border: int = 0) -> float:
    """PSNR (peak 255) between two luma images in 0..255 after shaving ``border`` pixels."""
    diff = shave(np.asarray(pred, np.float64), border) - shave(np.asarray(ref, np.float64), border)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def ssim(pred: np.ndarray, ref: np.ndarray, border: int = 0) -> float:
    """SSIM on luma (0..255) per PROTOCOL.md, computed by scikit-image."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            shave(np.asarray(pred, np.float64), border),
            shave(np.asarray(ref, np.float64), border),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255.0,
        )
    )
