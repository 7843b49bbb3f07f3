"""The int8 forms of the upsampler, in one place: what each form is, what it leaves for the flatbuffer pinning,
and how the one a file ships with is chosen.

Full-integer files round every int8 tensor, and the ones carrying the whole image (the bicubic path the
residual models start from) cost the most. Two exact rewrites of the trained upsampler keep those roundings
small; which one rounds less depends on the trained weights, so both are built and measured:

**Split (``split_concat``).** A TFLite int8 CONCATENATION forces one scale on all its inputs, so the 0..1 LR
input would inherit the features' much wider range. A convolution over concatenated channels is the sum of
convolutions over each group, so the upsampler is split into one convolution per group plus an ``Add`` (whose
int8 kernel rescales each input on its own). The LR group carries most of the signal, so int8 rounding of its
weights shows as a per-phase gain error (~0.6 %, ~0.08 dB at x2); its kernel ``K`` is written as ``hi + lo``
(``residual_hi_lo_weights``): ``hi`` lies exactly on the per-channel symmetric int8 grid the converters use
(scale ``max|K|/127``), ``lo = K - hi`` is at most half a step and gets its own fine scale. ``lo`` is added
to the small-range feature term first, so the extra int8 sum is fine-grained.

**Nearest-neighbour anchor (``nearest_anchor``, full-integer TFLite).** The split form still rounds two
image-range int8 tensors (the bicubic branch and a partial sum) before the output. Bicubic = nearest neighbour
+ (bicubic − nearest): nearest neighbour is a copy of the 8-bit input (lossless in int8 once the input sits on
the 1/255 grid), and the difference has weights no larger than the feature weights, so it joins the features
in *one* convolution over the concat again. The features are rescaled to 0..1 (``features_on_input_grid``:
their calibrated maximum folded into the expand convolution and back into the upsampler) so the concat's one
int8 grid is the input's, and the remainder's output is put on the display grid (1/255) so the final ADD is an
exact integer sum whose one rounding is the display's.

The objects passed between the steps:

- :class:`Int8Form` (``SPLIT``, ``NEAREST_ANCHOR``): the recipe; :meth:`Int8Form.rewrite` gives a
  :class:`Rewritten` Keras model with its :class:`Pins`;
- :class:`Pins` go with the export (``ExportJob.pins``) to ``tflite_tools.pin_exact_grids``, naming the layers
  whose tensors it puts back on exact grids;
- :class:`Candidate`: one built file per form with its calibration error; :func:`choose` keeps the smaller
  (the split form on a tie) and says why in the manifest's notes.

On the shipped models the anchor wins for both x2 files and the split for x3, x4 and the Edge TPU files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from deconv_edge_train.models.base import UPSAMPLER_LAYER


@dataclass(frozen=True)
class UpsamplerNames:
    """The names of the layers a rewrite creates, spelled in this one place.

    They reach the converted graph's tensor names (``model/upsample_conv_nearest_1/convolution``), which is how
    :class:`Pins` find a branch again in the flatbuffer.
    """

    prefix: str = UPSAMPLER_LAYER

    def branch(self, form: str, part: str = "") -> str:
        """One upsampler convolution: ``upsample_conv_1_hi`` (sub-pixel) or ``upsample_1_hi`` (deconvolution)."""
        return f"{self.prefix}_conv{part}" if form == "subpixel" else f"{self.prefix}{part}"

    def sum(self, index: Optional[int] = None) -> str:
        return f"{self.prefix}_sum" + (f"_{index}" if index is not None else "")

    @property
    def concat(self) -> str:
        return f"{self.prefix}_concat"

    @property
    def d2s(self) -> str:
        return f"{self.prefix}_d2s"

    @property
    def act(self) -> str:
        return f"{self.prefix}_act"


NAMES = UpsamplerNames()


@dataclass(frozen=True)
class Pins:
    """What ``tflite_tools.pin_exact_grids`` puts back on an exact grid, named by the rewrite that made the graph.

    Attributes:
        nearest: layer name of the nearest-neighbour branch (weights 1: a lossless copy of the 8-bit input),
            or ``None`` when the form has none.
        sum: the ADD that branch feeds as its *first* input: TFLite's calibrator gives an ADD's first input the
            output's range, which the pinning puts back on the input's grid.
    """

    nearest: Optional[str] = None
    sum: Optional[str] = None


def tensor_of_layer(tensor_name: str, layer: Optional[str]) -> bool:
    """Whether a converted tensor belongs to Keras layer ``layer``: one scope of its name (``/``-separated,
    names fused by the converter joined by ``;``) is ``layer`` or ``layer_N``."""
    if not layer:
        return False
    pattern = re.compile(rf"{re.escape(layer)}(_\d+)?")
    return any(pattern.fullmatch(part) for name in tensor_name.split(";") for part in name.split("/"))


@dataclass(frozen=True, eq=False)
class Rewritten:
    """A Keras model in one int8 form, and what its export must pin."""

    model: Any
    form: Int8Form
    pins: Pins


@dataclass(frozen=True)
class Int8Form:
    """One int8 form of the upsampler.

    Attributes:
        key: its name in notes (``split_concat``, ``nearest_anchor``).
        rewrites: the manifest's ``graph_rewrites`` entries for it.
        needs_full_integer: only worth building for full-integer TFLite (the exact ADD needs int8 activations).
    """

    key: str
    rewrites: tuple
    needs_full_integer: bool = False

    def rewrite(self, model, upsampler: str, calib=None) -> Rewritten:
        """``model`` with its upsampler in ``upsampler`` form (``deconv``/``subpixel``) and this int8 form.

        ``calib`` (the calibration samples) gives the anchor form the features' maximum, for rescaling them
        onto the input's grid.
        """
        from .rewrite import rewrite_upsampler, upsampler_feature_max

        if self is SPLIT:
            return Rewritten(rewrite_upsampler(model, upsampler, split_concat=True, int8_split=True), self, Pins())
        fmax = upsampler_feature_max(model, calib) if calib is not None else None
        rewritten = rewrite_upsampler(model, upsampler, nearest_anchor=True, feature_max=fmax)
        nearest = NAMES.branch(upsampler, "_nearest")
        # A model whose upsampler does not read the input has no path to anchor: it came back split, unpinned.
        has_branch = any(layer.name == nearest for layer in rewritten.layers)
        return Rewritten(rewritten, self, Pins(nearest=nearest, sum=NAMES.sum()) if has_branch else Pins())


SPLIT = Int8Form("split_concat", ("split_concat", "residual_hi_lo_weights"))
NEAREST_ANCHOR = Int8Form("nearest_anchor", ("nearest_anchor", "features_on_input_grid"), needs_full_integer=True)
#: In order of preference on a tie.
FORMS = (SPLIT, NEAREST_ANCHOR)


def calibration_mse(path: Path, calib_set, refs: Sequence[np.ndarray]) -> float:
    """Mean squared error of a full-integer TFLite file against ``refs`` (the float model's clipped outputs on
    the calibration samples), computed in float64."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    info = np.iinfo(inp["dtype"])
    total, n = 0.0, 0
    for x, ref in zip(calib_set, refs):
        if tuple(inp["shape"]) != tuple(x.shape):
            it.resize_tensor_input(inp["index"], list(x.shape))
            it.allocate_tensors()
            inp, out = it.get_input_details()[0], it.get_output_details()[0]
        it.set_tensor(inp["index"], np.clip(np.round(x / s_in + z_in), info.min, info.max).astype(inp["dtype"]))
        it.invoke()
        y = (it.get_tensor(out["index"]).astype(np.float64) - z_out) * s_out
        total += float(np.sum((y - ref) ** 2))
        n += y.size
    return total / max(n, 1)


@dataclass(frozen=True, eq=False)
class Candidate:
    """One exported file of one form, and its error against the float model on the calibration pictures."""

    form: Int8Form
    path: Path
    result: Any
    mse: float


def measure(form: Int8Form, path: Path, result, calib_set, refs: Sequence[np.ndarray]) -> Candidate:
    return Candidate(form, Path(path), result, calibration_mse(path, calib_set, refs))


def choose(candidates: Sequence[Candidate]) -> tuple[Candidate, str]:
    """The candidate with the smaller calibration error (the earlier form on a tie), and the note saying so."""
    best = candidates[0]
    for c in candidates[1:]:
        if c.mse < best.mse:
            best = c
    errors = ", ".join(f"{'split' if c.form is SPLIT else 'nearest anchor'} {c.mse:.3g}" for c in candidates)
    return best, f"int8 upsampler: {best.form.key} (calibration MSE vs float: {errors})"
