"""The accuracy gate: run an artifact through its ``edge_runtime`` backend and compare under PROTOCOL.md.

For every ``--eval`` picture the low-resolution luma goes through the artifact by the device's own code path
(:class:`~edge_runtime.inference.enhance.Enhancer`: its backend, quantization from the manifest, and for
fixed-size artifacts its tiler with the runtime's halo) and through the float Keras model, tiled by the very
same tiler (same tiles, halo and batches), so the comparison with float measures conversion error only. Reported: PSNR/SSIM against ground truth (8-bit output, ``scale``
border shaved), PSNR of the artifact's output against the float output, max abs error (0..1), and the PSNR
drop (float PSNR − artifact PSNR).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_train.data import NamedImage
from deconv_edge_train.protocol import psnr_db, quantize_8bit, ssim
from edge_runtime.inference.config import RuntimeConfig

from .calibration import Degradation
from .exporters import GATE_MAX_ABS

BatchFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Gate:
    """Pass when ``metric`` ≤ ``threshold`` (``max_abs_error`` in 0..1 units, or ``psnr_drop_db``)."""

    metric: str
    threshold: float

    def passes(self, value: float) -> bool:
        return bool(np.isfinite(value)) and value <= self.threshold

    def to_dict(self, value: float) -> dict:
        return {"metric": self.metric, "threshold": self.threshold, "value": _finite(value),
                "passed": self.passes(value)}


@dataclass(frozen=True)
class EvalPicture:
    """One evaluation picture: ground truth (0..255) and the model's input (H, W, C) in 0..1.

    For super-resolution the input is the low-resolution luma; for denoising, the noisy grey picture (and
    the noise-level map when the model takes one).
    """

    name: str
    hr_y: np.ndarray
    lr: np.ndarray


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Pictures prepared once per conversion, with float Keras outputs cached per tiling."""

    pictures: tuple
    scale: int
    source: str
    _float_cache: dict = field(default_factory=dict, repr=False)
    #: Border pixels left out of PSNR/SSIM (SR: ``scale``, PROTOCOL.md; denoising: none).
    shave: Optional[int] = None
    #: Input height and width are padded to multiples of this (stride-2 denoisers: 4).
    size_multiple: int = 1

    @classmethod
    def from_images(cls, images: Sequence[NamedImage], scale: int, source: str = "",
                    degradation: Optional[Degradation] = None, size_multiple: int = 1) -> EvalSet:
        deg = degradation or Degradation(scale=scale)
        pics = tuple(EvalPicture(Path(img.name).name, deg.truth(img), deg.model_input(img, seed=i))
                     for i, img in enumerate(deg.usable(images, "eval")))
        return cls(pics, int(scale), source, shave=0 if deg.task == "denoise" else int(scale),
                   size_multiple=int(size_multiple))

    @property
    def border(self) -> int:
        return self.scale if self.shave is None else self.shave

    def float_outputs(self, keras_model, enhancer=None) -> list[np.ndarray]:
        """Keras outputs (H·s, W·s) in 0..1 for every picture, tiled by ``enhancer``'s tiler exactly as it
        tiles its artifact (``None``: whole pictures); cached per tiling."""
        key = (id(keras_model), None if enhancer is None else (enhancer.tile, enhancer.halo, enhancer.max_batch))
        if key not in self._float_cache:
            def predict(x):
                return np.asarray(keras_model(x, training=False))

            if enhancer is None:
                outs = [run_whole(predict, p.lr, self.scale, self.size_multiple) for p in self.pictures]
            else:
                outs = [enhancer.tiled(predict, p.lr) for p in self.pictures]
            self._float_cache[key] = [np.asarray(o, np.float32) for o in outs]
        return self._float_cache[key]

    def float_quality(self, keras_model) -> tuple[float, float]:
        """Mean PSNR (dB) and SSIM of the float model on whole pictures, per PROTOCOL.md."""
        refs = self.float_outputs(keras_model)
        s = self.border
        psnrs = [psnr_db(quantize_8bit(r * 255.0), p.hr_y, s) for r, p in zip(refs, self.pictures)]
        ssims = [ssim(quantize_8bit(r * 255.0), p.hr_y, s) for r, p in zip(refs, self.pictures)]
        return float(np.mean(psnrs)), float(np.mean(ssims))


@dataclass(frozen=True)
class Accuracy:
    """The gate's numbers for one artifact (``to_dict`` is the manifest's ``accuracy`` field)."""

    eval_data: str
    backend: str
    tile_hw: Optional[tuple]
    halo: Optional[int]
    psnr_db: float
    ssim: float
    float_psnr_db: float
    float_ssim: float
    psnr_vs_float_db: float
    max_abs_error: float
    psnr_drop_db: float
    gate: Gate
    per_image: tuple = ()

    @property
    def gate_value(self) -> float:
        return self.max_abs_error if self.gate.metric == GATE_MAX_ABS else self.psnr_drop_db

    @property
    def passed(self) -> bool:
        return self.gate.passes(self.gate_value)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tile_hw"] = list(self.tile_hw) if self.tile_hw else None
        d["gate"] = self.gate.to_dict(self.gate_value)
        d["per_image"] = list(self.per_image)
        for k, v in list(d.items()):
            if isinstance(v, float):
                d[k] = _finite(v)
        return d


def _finite(v: float):
    """JSON has no infinity: identical outputs (PSNR = ∞) are stored as ``null``."""
    return None if v is None or not math.isfinite(v) else float(v)


def gate_halo(tile_hw: Optional[tuple], task: str = "super-resolution", receptive_radius_px: Optional[int] = None,
              multiple: int = 1) -> int:
    """The runtime's default halo for the task and network, or for a tile too small for it (tiny test
    artifacts) the largest that keeps half of each tile side."""
    from edge_runtime.inference.enhance import default_halo

    halo = default_halo(task, receptive_radius_px, multiple)
    if tile_hw is None:
        return halo
    return min(halo, (min(tile_hw) - 1) // 4)


def run_whole(predict: BatchFn, lr: np.ndarray, scale: int, multiple: int = 1) -> np.ndarray:
    """``predict`` ((1,h,w,C) → (1,h·s,w·s,1)) on the whole of ``lr`` (H, W) or (H, W, C); a model that needs
    sides in multiples of ``multiple`` gets them padded by reflection (as the denoising evaluator does), and
    the output is cropped back."""
    if lr.ndim == 2:
        lr = lr[:, :, None]
    h, w = lr.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    x = np.pad(lr, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else lr
    out = np.asarray(predict(x[None].astype(np.float32)), np.float32)[0, :, :, 0]
    return out[: h * scale, : w * scale]


def open_for_gate(artifact: Path, threads: Optional[int]):
    """The device's code path for ``artifact``: an Enhancer with the backend its manifest calls for; returns
    ``(enhancer, backend description)``.

    An Edge TPU artifact on a machine without the Edge TPU runtime runs on the CPU interpreter (the same
    int8 arithmetic, minus the accelerator); the description says so.
    """
    from deconv_edge_core.manifest import load_manifest
    from edge_runtime.inference.enhance import Enhancer

    manifest, _ = load_manifest(artifact)
    h, w = manifest.input.hw
    enhancer = Enhancer(artifact, RuntimeConfig(threads=threads),
                        halo=gate_halo(None if h is None or w is None else (h, w), manifest.task,
                                       manifest.receptive_radius_px,
                                       manifest.noise.size_multiple if manifest.noise is not None else 1))
    backend = enhancer.backend
    desc = backend.name
    # open_backend records a fallback on the backend (its warning goes to stderr, out of reach of a caller).
    if backend.fallback:
        desc += " (Edge TPU runtime not found: CPU fallback)"
    return enhancer, desc


def check_artifact(artifact: Path, keras_model, eval_set: EvalSet, gate: Gate,
                   threads: Optional[int] = None) -> Accuracy:
    """Evaluate ``artifact`` (its manifest beside it) against ``keras_model`` on ``eval_set``."""
    enhancer, desc = open_for_gate(artifact, threads)
    h, w = enhancer.manifest.input.hw
    tile_hw = None if (h is None or w is None) else (int(h), int(w))
    refs = eval_set.float_outputs(keras_model, enhancer)
    lo, hi = enhancer.manifest.value_range
    s = eval_set.border
    rows = []
    max_abs = 0.0
    for pic, ref in zip(eval_set.pictures, refs):
        x = np.array(pic.lr, np.float32)
        if x.ndim == 3:  # luma (+ a denoiser's noise-level map, which stays as the picture's own)
            x[..., 0] = x[..., 0] * (hi - lo) + lo
        else:
            x = x * (hi - lo) + lo
        out = (enhancer.upscale_y(x) - lo) / (hi - lo)
        if out.shape != ref.shape:
            raise UserError(f"{artifact.name} answers {out.shape} for {pic.name}, expected {ref.shape}")
        max_abs = max(max_abs, float(np.max(np.abs(out.astype(np.float64) - ref))))
        out8, ref8 = quantize_8bit(out * 255.0), quantize_8bit(ref * 255.0)
        rows.append({
            "image": pic.name,
            "psnr_db": psnr_db(out8, pic.hr_y, s), "ssim": ssim(out8, pic.hr_y, s),
            "float_psnr_db": psnr_db(ref8, pic.hr_y, s), "float_ssim": ssim(ref8, pic.hr_y, s),
            # Unrounded and unclipped: how far the artifact is from float, not from the display.
            "psnr_vs_float_db": psnr_db(out * 255.0, ref * 255.0, s),
        })

    def mean(k: str) -> float:
        vals = [r[k] for r in rows]
        return float("inf") if any(math.isinf(v) for v in vals) else float(np.mean(vals))

    psnr, fpsnr = mean("psnr_db"), mean("float_psnr_db")
    per_image = tuple({k: (_finite(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    return Accuracy(eval_data=eval_set.source, backend=desc, tile_hw=tile_hw,
                    halo=enhancer.halo if tile_hw else None, psnr_db=psnr, ssim=mean("ssim"),
                    float_psnr_db=fpsnr, float_ssim=mean("float_ssim"), psnr_vs_float_db=mean("psnr_vs_float_db"),
                    max_abs_error=max_abs, psnr_drop_db=fpsnr - psnr, gate=gate, per_image=per_image)
