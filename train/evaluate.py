"""Standard SR evaluation (``../shared/PROTOCOL.md``): mean Y-PSNR and SSIM over a set of pictures.

A *predictor* maps low-resolution luma (H, W) float32 in 0..1 to high-resolution luma in 0..1; Keras
models, bicubic, and every exported artifact plug in the same way, so all numbers are comparable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from deconv_edge_core.errors import UserError

from .data import NamedImage, load_image_set
from .protocol import check_scale, degrade, imresize, modcrop, psnr_db, quantize_8bit, rgb_to_y, ssim

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvalResult:
    """Mean and per-image quality of one predictor on one set at one scale."""

    model: str
    data: str
    scale: int
    psnr_db: float
    ssim: float
    per_image: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def bicubic_predictor(scale: int) -> Predictor:
    """Plain bicubic upscaling (the field's baseline)."""

    def predict(lr: np.ndarray) -> np.ndarray:
        return imresize(lr, (lr.shape[0] * scale, lr.shape[1] * scale))

    return predict


def keras_predictor(model) -> Predictor:
    """Run a Keras model on one picture (any size: the models are fully convolutional)."""

    def predict(lr: np.ndarray) -> np.ndarray:
        out = model(np.asarray(lr, np.float32)[None, :, :, None], training=False)
        return np.asarray(out)[0, :, :, 0]

    return predict


def evaluate_images(predict: Predictor, images: Sequence[NamedImage], scale: int, *, model_name: str = "",
                    data_name: str = "") -> EvalResult:
    """Evaluate ``predict`` on decoded ground-truth pictures per PROTOCOL.md."""
    scale = check_scale(scale)
    rows = []
    for img in images:
        hr = rgb_to_y(modcrop(img.rgb, scale))
        lr = degrade(hr, scale) / 255.0
        out = np.asarray(predict(lr), np.float64) * 255.0
        if out.shape != hr.shape:
            raise UserError(f"model output {out.shape} does not match x{scale} of {img.name} {hr.shape}; "
                            "is the model trained for this scale?")
        out8 = quantize_8bit(out)
        rows.append({"image": Path(img.name).name, "psnr_db": psnr_db(out8, hr, scale), "ssim": ssim(out8, hr, scale)})
    return EvalResult(
        model=model_name,
        data=data_name,
        scale=scale,
        psnr_db=float(np.mean([r["psnr_db"] for r in rows])),
        ssim=float(np.mean([r["ssim"] for r in rows])),
        per_image=rows,
    )


def frame_lr_bgr(img: NamedImage, scale: int) -> np.ndarray:
    """The 8-bit colour low-resolution frame of a ground-truth picture, as a camera gives it: each RGB channel of
    the modcropped picture downscaled by the protocol's antialiased bicubic, rounded to 8 bits, in BGR order."""
    hr = modcrop(img.rgb, scale).astype(np.float32)
    lr = np.stack([quantize_8bit(degrade(hr[..., c], scale)) for c in range(3)], axis=-1)
    return np.ascontiguousarray(lr[..., ::-1].astype(np.uint8))


def evaluate_frames(enhance: Callable[[np.ndarray], np.ndarray], images: Sequence[NamedImage], scale: int, *,
                    model_name: str = "", data_name: str = "") -> EvalResult:
    """Quality through the product's whole frame path: uint8 BGR in (:func:`frame_lr_bgr`), uint8 BGR out (an
    ``Enhancer``), PSNR/SSIM on the studio-range Y of the output (rounded to 8 bits, as MATLAB's ``rgb2ycbcr``
    gives for uint8) against the ground truth's, ``scale`` pixels shaved.

    Unlike :func:`evaluate_images`, the colour conversion, the 8-bit input and output, and the chroma path are
    part of what is measured.
    """
    scale = check_scale(scale)
    rows = []
    for img in images:
        hr = rgb_to_y(modcrop(img.rgb, scale))
        out = np.asarray(enhance(frame_lr_bgr(img, scale)))
        if out.shape != hr.shape + (3,) or out.dtype != np.uint8:
            raise UserError(f"frame output {out.shape} {out.dtype} is not x{scale} uint8 BGR of {img.name} {hr.shape}")
        out_y = quantize_8bit(rgb_to_y(np.ascontiguousarray(out[..., ::-1])))
        rows.append({"image": Path(img.name).name, "psnr_db": psnr_db(out_y, hr, scale), "ssim": ssim(out_y, hr, scale)})
    return EvalResult(model=model_name, data=data_name, scale=scale,
                      psnr_db=float(np.mean([r["psnr_db"] for r in rows])),
                      ssim=float(np.mean([r["ssim"] for r in rows])), per_image=rows)


def load_keras_model(path: str | Path):
    """Load a ``.keras`` file in safe mode, with one-line errors for missing/corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file '{path}' does not exist")
    if path.suffix != ".keras":
        raise UserError(f"'{path}' is not a .keras file (give a model saved by 'deconv-edge train')")
    import keras

    try:
        return keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is not a usable model
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"cannot load model '{path}' (corrupt or not a deconv-edge model): {msg[:200]}") from None


def model_scale(model) -> int:
    """The upscaling factor of a loaded model, read from its upsampler's stride."""
    from .models.base import UPSAMPLER_LAYER

    if any(layer.name == "denoised" for layer in model.layers):
        return 1  # a denoiser (``models.rednet``): same size out as in
    try:
        return int(model.get_layer(UPSAMPLER_LAYER).strides[0])
    except ValueError:
        raise UserError(f"model '{model.name}' has no '{UPSAMPLER_LAYER}' layer; not a deconv-edge model") from None


def evaluate(model: str, data: Sequence[str], scale: int | None = None) -> EvalResult:
    """Evaluate a ``.keras`` model path or ``bicubic`` on image folders (``builtin`` allowed).

    Args:
        model: path to a ``.keras`` file, or ``"bicubic"``.
        data: folders of ground-truth pictures.
        scale: upscaling factor; read from the model when omitted (required for bicubic).
    """
    if model == "bicubic":
        if scale is None:
            raise UserError("--scale is required with --model bicubic")
        scale = check_scale(scale)
        predict, name = bicubic_predictor(scale), "bicubic"
    else:
        keras_model = load_keras_model(model)
        trained = model_scale(keras_model)
        if scale is not None and check_scale(scale) != trained:
            raise UserError(f"model '{model}' upscales x{trained}, not x{scale}; drop --scale or pass {trained}")
        scale, predict, name = trained, keras_predictor(keras_model), str(model)
    images = load_image_set(data)
    return evaluate_images(predict, images, scale, model_name=name, data_name=",".join(map(str, data)))
