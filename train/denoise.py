"""The denoising task: training patches, the protocol's evaluation, and the peers (OpenCV NLM, BM3D).

A *denoiser* maps a noisy picture, grey (H, W) or colour RGB (H, W, 3), float32 in 0..1, and its noise level σ
(0..255 units) to the clean picture in 0..1, like the SR predictors of :mod:`deconv_edge_train.evaluate`: Keras models, the identity (the
"noisy input" row), OpenCV's ``fastNlMeansDenoising`` and BM3D plug in the same way, so every number is
measured by the same code under ``../shared/PROTOCOL.md``'s noise rule.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from deconv_edge_core.errors import UserError

from .noise import SIGMA_MAX, awgn_batch, camera_batch, protocol_noisy
from .protocol import list_images, psnr_db, quantize_8bit

Denoiser = Callable[[np.ndarray, float], np.ndarray]
VAL_SIGMA = 25.0


def _load(path: str | Path, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert(mode), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UserError(f"cannot read image '{path}': {exc.__class__.__name__}: {exc}") from None


def load_grey(path: str | Path) -> np.ndarray:
    """A picture as uint8 grey (H, W) (colour converted with Pillow's ITU-R 601 weights)."""
    return _load(path, "L")


def grey_of(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> uint8 grey with Pillow's ITU-R 601 weights (what ``load_grey`` gives for a colour file)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).convert("L"), dtype=np.uint8)


def load_grey_set(folders: Sequence[str | Path]) -> list[tuple[str, np.ndarray]]:
    """``(name, grey uint8)`` for every picture of the folders, each folder in sorted file-name order."""
    return [(p.name, load_grey(p)) for folder in folders for p in list_images(folder)]


def load_rgb(path: str | Path) -> np.ndarray:
    """A picture as uint8 RGB (H, W, 3) (a grey file gets three equal channels)."""
    return _load(path, "RGB")


def load_colour_set(folders: Sequence[str | Path]) -> list[tuple[str, np.ndarray]]:
    """``(name, RGB uint8)`` for every picture of the folders (colour noise: each channel gets its own)."""
    return [(p.name, load_rgb(p)) for folder in folders for p in list_images(folder)]


def on_planes(grey: Denoiser) -> Denoiser:
    """A grey denoiser applied to a colour picture as the runtime does by default (``--chroma denoise``,
    :mod:`edge_runtime.inference.chroma`): full-range Y at the luma noise level, then Cr and Cb at half
    resolution at theirs. ``sigma`` is the noise in each of R, G and B."""
    from edge_runtime.inference.chroma import CHROMA_STRENGTH, LUMA_PER_CHANNEL

    def denoise(noisy01: np.ndarray, sigma: float) -> np.ndarray:
        if noisy01.ndim == 2:
            return grey(noisy01, sigma)
        import cv2

        h, w = noisy01.shape[:2]
        y, cr, cb = cv2.split(cv2.cvtColor(np.ascontiguousarray(noisy01[..., ::-1], np.float32),
                                           cv2.COLOR_BGR2YCrCb))  # float: Y 0..1, chroma around 0.5
        s = LUMA_PER_CHANNEL * float(sigma)
        planes = [np.asarray(grey(y, s), np.float32)]
        for plane, k in ((cr, CHROMA_STRENGTH["cr"]), (cb, CHROMA_STRENGTH["cb"])):
            small = cv2.resize(plane, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
            planes.append(cv2.resize(np.asarray(grey(small, s * k), np.float32), (w, h),
                                     interpolation=cv2.INTER_LINEAR))
        return np.clip(cv2.cvtColor(cv2.merge(planes), cv2.COLOR_YCrCb2BGR)[..., ::-1], 0.0, 1.0)

    return denoise


def on_luma(grey: Denoiser) -> Denoiser:
    """A grey denoiser applied to a colour picture's luma only (``--chroma keep``): it denoises the
    full-range BT.601 luma and adds the change to R, G and B alike (chroma noise is left as it is)."""

    def denoise(noisy01: np.ndarray, sigma: float) -> np.ndarray:
        if noisy01.ndim == 2:
            return grey(noisy01, sigma)
        luma = noisy01 @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(noisy01 + (np.asarray(grey(luma, sigma), np.float32) - luma)[..., None], 0.0, 1.0)

    return denoise


class DenoisePatchSampler:
    """Random (noisy, clean) grey patch batches in 0..1, NHWC float32, σ uniform in ``sigma_range`` per patch.

    Args:
        images: clean grey pictures (uint8).
        patch: patch side.
        batch_size: patches per batch.
        sigma_range: noise levels (0..255 units) drawn per patch.
        noise_map: append the σ/255 map as a second input channel.
        seed: RNG seed (the campaign resumes with ``seed + step``).
        noise: ``awgn`` (σ from ``sigma_range``) or ``camera`` (:func:`~deconv_edge_train.noise.camera_batch`:
            random shot, read and JPEG strengths; the map holds the std of the noise that was added).
    """

    def __init__(self, images: Sequence[np.ndarray], patch: int, batch_size: int,
                 sigma_range: tuple = (0.0, SIGMA_MAX), noise_map: bool = True, seed: int = 0, noise: str = "awgn"):
        self.images = [im.astype(np.float32) / 255.0 for im in images if min(im.shape[:2]) >= patch]
        if not self.images:
            raise UserError(f"every image is smaller than one {patch}x{patch} training patch; use a smaller --patch")
        self.patch, self.batch_size, self.noise_map = int(patch), int(batch_size), bool(noise_map)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        area = np.array([(im.shape[0] - patch + 1) * (im.shape[1] - patch + 1) for im in self.images], np.float64)
        self.weights = area / area.sum()
        self.pairs = self.images  # for the report's counts

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        p, b = self.patch, self.batch_size
        clean = np.empty((b, p, p, 1), np.float32)
        for k, i in enumerate(self.rng.choice(len(self.images), size=b, p=self.weights)):
            im = self.images[i]
            y0 = int(self.rng.integers(0, im.shape[0] - p + 1))
            x0 = int(self.rng.integers(0, im.shape[1] - p + 1))
            crop = im[y0:y0 + p, x0:x0 + p]
            if self.rng.integers(0, 2):
                crop = crop[:, ::-1]
            clean[k, ..., 0] = np.rot90(crop, int(self.rng.integers(0, 4)))
        if self.noise == "camera":
            noisy, sigma = camera_batch(clean, self.rng)
        else:
            sigma = self.rng.uniform(*self.sigma_range, size=b).astype(np.float32)
            noisy = awgn_batch(clean, sigma, self.rng)
        if self.noise_map:
            noisy = np.concatenate([noisy, np.broadcast_to((sigma / 255.0).reshape(-1, 1, 1, 1), clean.shape)], -1)
        return noisy.astype(np.float32), clean

    def __iter__(self):
        while True:
            yield self.sample()


def pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad (H, W) up to multiples of ``multiple``; returns the padded array and the original size."""
    h, w = x.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw)) + ((0, 0),) * (x.ndim - 2), mode="reflect")
    return x, (h, w)


def keras_denoiser(model, multiple: int = 4) -> Denoiser:
    """A one-channel Keras denoiser as a :data:`Denoiser` (colour pictures: on Y, Cr and Cb, :func:`on_planes`)."""
    return on_planes(_keras_grey(model, multiple))


def _keras_grey(model, multiple: int = 4) -> Denoiser:
    """Run a Keras denoiser (1 channel, or 2 with the noise-level map) on one grey picture."""
    channels = int(model.inputs[0].shape[-1])

    def denoise(noisy01: np.ndarray, sigma: float) -> np.ndarray:
        x, (h, w) = pad_to_multiple(np.asarray(noisy01, np.float32), multiple)
        planes = [x] if channels == 1 else [x, np.full_like(x, sigma / 255.0)]
        out = model(np.stack(planes, -1)[None], training=False)
        return np.asarray(out)[0, :h, :w, 0]

    return denoise


def identity_denoiser(noisy01: np.ndarray, sigma: float) -> np.ndarray:
    """The "noisy input" row."""
    return noisy01


def nlm_denoiser(noisy01: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV ``fastNlMeansDenoising`` with the protocol's settings (h = 0.9σ, template 7, search 21); colour
    pictures get ``fastNlMeansDenoisingColored`` (h = hColor = 0.9σ)."""
    import cv2

    img8 = np.clip(np.round(noisy01 * 255.0), 0, 255).astype(np.uint8)
    h = 0.9 * float(sigma)
    if img8.ndim == 3:  # OpenCV's colour NLM works in Lab from BGR
        bgr = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(img8[..., ::-1]), None, h, h, 7, 21)
        return bgr[..., ::-1].astype(np.float32) / 255.0
    return cv2.fastNlMeansDenoising(img8, None, h=h, templateWindowSize=7,
                                    searchWindowSize=21).astype(np.float32) / 255.0


def bm3d_denoiser(noisy01: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D, the reference implementation (``pip install bm3d``, the ``[bench]`` extra)."""
    if importlib.util.find_spec("bm3d") is None:
        raise UserError("BM3D needs the bm3d package: pip install bm3d (or the [bench] extra)")
    import bm3d

    if noisy01.ndim == 3:  # CBM3D: the colour variant, in its opponent colour space
        return np.asarray(bm3d.bm3d_rgb(noisy01.astype(np.float64), sigma_psd=float(sigma) / 255.0), np.float32)
    return np.asarray(bm3d.bm3d(noisy01.astype(np.float64), sigma_psd=float(sigma) / 255.0), np.float32)


PEERS: dict[str, Denoiser] = {"noisy": identity_denoiser, "nlm": nlm_denoiser, "bm3d": bm3d_denoiser}


@dataclass(frozen=True)
class DenoiseResult:
    """Mean PSNR per σ of one denoiser on one set."""

    method: str
    data: str
    psnr_db: dict
    per_image: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_denoise(denoise: Denoiser, images: Sequence[tuple[str, np.ndarray]], sigmas: Sequence[float], *,
                     method: str = "", data: str = "") -> DenoiseResult:
    """The protocol: seeded noise per σ (pictures in the given order), 8-bit output, PSNR against the clean."""
    names = [n for n, _ in images]
    clean = [im for _, im in images]
    means, rows = {}, []
    for sigma in sigmas:
        scores = []
        for name, ref, noisy in zip(names, clean, protocol_noisy(clean, sigma)):
            out = np.asarray(denoise(noisy.astype(np.float32) / 255.0, float(sigma)), np.float64) * 255.0
            if out.shape != ref.shape:
                raise UserError(f"denoiser output {out.shape} does not match {name} {ref.shape}")
            scores.append(psnr_db(quantize_8bit(out), ref.astype(np.float64)))
            rows.append({"image": name, "sigma": float(sigma), "psnr_db": scores[-1]})
        means[f"{float(sigma):g}"] = float(np.mean(scores))
    return DenoiseResult(method=method, data=data, psnr_db=means, per_image=rows)


def val_psnr_db(model, images: Sequence[tuple[str, np.ndarray]]) -> float:
    """Validation during training: mean PSNR at σ = 25 under the protocol."""
    return evaluate_denoise(keras_denoiser(model), images, [VAL_SIGMA]).psnr_db[f"{VAL_SIGMA:g}"]


def parse_sigmas(text: str) -> list[float]:
    """``"15,25,50"`` -> ``[15.0, 25.0, 50.0]`` (0 < σ <= 100, finite)."""
    try:
        values = [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--sigma must be numbers separated by commas, like 15,25,50 (not '{text}')") from None
    if not values or not all(0 < v <= 100 for v in values):
        raise UserError(f"--sigma values must be in (0, 100], like 15,25,50 (not '{text}')")
    return values
