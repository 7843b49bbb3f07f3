"""The accuracy gate: run an artifact through its ``edge_runtime`` backend and compare under PROTOCOL.md.

For every ``--eval`` picture the low-resolution luma goes through the artifact (the very backend a device
uses, quantization from the manifest) and through the float Keras model. Fixed-size artifacts see the picture
as overlapping tiles of their input size, each keeping its centre (a picture smaller than a tile is
edge-padded); the Keras reference is run on the *same* tiles, so the comparison with
float measures conversion error only. Reported: PSNR/SSIM against ground truth (8-bit output, ``scale``
border shaved), PSNR of the artifact's output against the float output, max abs error (0..1), and the PSNR
drop (float PSNR − artifact PSNR).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from edge_runtime.config import RuntimeConfig
from edge_runtime.errors import UserError
from train.data import NamedImage
from train.protocol import modcrop, psnr_db, quantize_8bit, rgb_to_y, ssim

from .calibration import lr_luma, usable
from .exporters import GATE_MAX_ABS

BatchFn = Callable[[np.ndarray], np.ndarray]
#: Low-resolution pixels dropped at inner tile borders (≥ the receptive radius of FSRCNN(56,12,4), 8).
TILE_HALO = 8


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
    """One evaluation picture: ground-truth luma (0..255) and its low-resolution luma (0..1)."""

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

    @classmethod
    def from_images(cls, images: Sequence[NamedImage], scale: int, source: str = "") -> EvalSet:
        pics = tuple(EvalPicture(Path(img.name).name, rgb_to_y(modcrop(img.rgb, scale)), lr_luma(img, scale))
                     for img in usable(images, scale, "eval"))
        return cls(pics, int(scale), source)

    def float_outputs(self, keras_model, tile_hw: Optional[tuple]) -> list[np.ndarray]:
        """Keras outputs (H·s, W·s) in 0..1 for every picture, tiled like the artifact (cached)."""
        key = (id(keras_model), tile_hw)
        if key not in self._float_cache:
            def predict(x):
                return np.asarray(keras_model(x, training=False))

            self._float_cache[key] = [run_tiled(predict, p.lr, tile_hw, self.scale) for p in self.pictures]
        return self._float_cache[key]

    def float_quality(self, keras_model) -> tuple[float, float]:
        """Mean PSNR (dB) and SSIM of the float model on whole pictures, per PROTOCOL.md."""
        refs = self.float_outputs(keras_model, None)
        s = self.scale
        psnrs = [psnr_db(quantize_8bit(r * 255.0), p.hr_y, s) for r, p in zip(refs, self.pictures)]
        ssims = [ssim(quantize_8bit(r * 255.0), p.hr_y, s) for r, p in zip(refs, self.pictures)]
        return float(np.mean(psnrs)), float(np.mean(ssims))


@dataclass(frozen=True)
class Accuracy:
    """The gate's numbers for one artifact (``to_dict`` is the manifest's ``accuracy`` field)."""

    eval_data: str
    backend: str
    tile_hw: Optional[tuple]
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


def tile_starts(size: int, tile: int, halo: int) -> list[int]:
    """Tile origins: consecutive tiles overlap by ``2·halo``; the last one is flush with the end."""
    if size <= tile:
        return [0]
    step = tile - 2 * halo
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def run_tiled(predict: BatchFn, lr: np.ndarray, tile_hw: Optional[tuple], scale: int,
              halo: int = TILE_HALO) -> np.ndarray:
    """Run ``predict`` ((1,h,w,1) → (1,h·s,w·s,1)) on ``lr`` (H, W) whole or in tiles of ``tile_hw``.

    Tiles overlap and each keeps only its centre (``halo`` LR pixels dropped on inner sides), so seams see
    real neighbours instead of zero padding, as a tiling runtime does.
    """
    if tile_hw is None:
        return np.asarray(predict(lr[None, :, :, None].astype(np.float32)), np.float32)[0, :, :, 0]
    th, tw = tile_hw
    hy, hx = min(halo, (th - 1) // 4), min(halo, (tw - 1) // 4)
    h, w = lr.shape
    padded = np.pad(lr, ((0, max(th - h, 0)), (0, max(tw - w, 0))), mode="edge")
    ph, pw = padded.shape
    out = np.zeros((ph * scale, pw * scale), np.float32)
    for y in tile_starts(ph, th, hy):
        y0, y1 = (y + hy if y > 0 else y), (y + th - hy if y + th < ph else y + th)
        for x in tile_starts(pw, tw, hx):
            x0, x1 = (x + hx if x > 0 else x), (x + tw - hx if x + tw < pw else x + tw)
            tile = np.ascontiguousarray(padded[y:y + th, x:x + tw], np.float32)[None, :, :, None]
            res = np.asarray(predict(tile))[0, :, :, 0]
            out[y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                res[(y0 - y) * scale:(y1 - y) * scale, (x0 - x) * scale:(x1 - x) * scale]
    return out[: h * scale, : w * scale]


def open_for_gate(artifact: Path, threads: Optional[int]):
    """The backend the artifact's manifest calls for; returns ``(backend, description)``.

    An Edge TPU artifact on a machine without the Edge TPU runtime runs on the CPU interpreter (the same
    int8 arithmetic, minus the accelerator); the description says so.
    """
    from edge_runtime.backends import open_backend

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = open_backend(artifact, RuntimeConfig(threads=threads))
    desc = backend.name
    if any("instead" in str(w.message) for w in caught):
        desc += " (Edge TPU runtime not found: CPU fallback)"
    return backend, desc


def check_artifact(artifact: Path, keras_model, eval_set: EvalSet, gate: Gate,
                   threads: Optional[int] = None) -> Accuracy:
    """Evaluate ``artifact`` (its manifest beside it) against ``keras_model`` on ``eval_set``."""
    backend, desc = open_for_gate(artifact, threads)
    h, w = backend.manifest.input.hw
    tile_hw = None if (h is None or w is None) else (int(h), int(w))
    refs = eval_set.float_outputs(keras_model, tile_hw)
    s = eval_set.scale
    rows = []
    max_abs = 0.0
    for pic, ref in zip(eval_set.pictures, refs):
        out = run_tiled(backend.run, pic.lr, tile_hw, s)
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
    return Accuracy(eval_data=eval_set.source, backend=desc, tile_hw=tile_hw, psnr_db=psnr, ssim=mean("ssim"),
                    float_psnr_db=fpsnr, float_ssim=mean("float_ssim"), psnr_vs_float_db=mean("psnr_vs_float_db"),
                    max_abs_error=max_abs, psnr_drop_db=fpsnr - psnr, gate=gate, per_image=per_image)
