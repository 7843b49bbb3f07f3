"""Accuracy checked on the device itself: reference pictures in every bundle, compared where the model runs.

A delegate, a runtime version or a CPU can change an artifact's numbers (the Edge TPU, TensorRT's int8, XNNPACK's
kernels on another ISA); the conversion gate only ran on the workstation. So ``bundle`` adds, per artifact:

- ``refs/NAME.npz``: a few small low-resolution luma pictures (``lr``, uint8), the float model's outputs for
  them (``float_sr``, from the fp32 export of the same source model beside the artifact, else the artifact's
  own output) and the artifact's outputs on the workstation (``ws_sr``), float32 so a device that reproduces
  the workstation bit for bit shows 0 difference;
- ``refs/NAME.json``: the workstation's figures on them (PSNR against the float outputs, max error) and the
  tolerances the device must meet.

``verify --accuracy`` (and ``deploy --check``) runs the artifact with the backend it will use on the device and
passes when PSNR >= the workstation's - :data:`PSNR_TOL_DB` and max error <= the workstation's +
:data:`MAX_ERR_TOL` (two 8-bit steps). The manifest's figures (the conversion gate, on the full eval set) are
reported beside.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from deconv_edge_core.errors import UserError

REFS_DIR = "refs"
REFS_SCHEMA = "deconv-edge-refs/1"
#: How far the device may fall below the workstation's PSNR against the float outputs.
PSNR_TOL_DB = 0.5
#: How far the device's max error may exceed the workstation's: two 8-bit output steps.
MAX_ERR_TOL = 2 / 255
#: Reference pictures per artifact and their low-resolution size (a few KB in all).
N_REFS, REF_HW = 2, (24, 24)
#: A bundle is untrusted: references larger than these are refused before they are read (real ones: a few KB).
MAX_REFS_FILE_BYTES = 1 << 20
MAX_REFS_ARRAY_BYTES = 16 << 20
MAX_REFS_PICTURES, MAX_REFS_SIDE = 16, 256


def reference_inputs(n: int = N_REFS, hw: tuple = REF_HW) -> np.ndarray:
    """Deterministic low-resolution test pictures, uint8 (n, h, w): edges, gratings of rising frequency, a ramp
    and seeded noise (what quantization and kernels get wrong first)."""
    h, w = hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(20260101)
    out = []
    for i in range(n):
        grating = 0.5 + 0.4 * np.sin((x + 2 * y) * (0.3 + 0.25 * i) + 0.02 * x * x)
        edge = ((x - w / 2) * math.cos(i + 0.5) + (y - h / 2) * math.sin(i + 0.5) > 0) * 0.35
        ramp = (x + y) / (h + w) * 0.3
        img = 0.6 * grating + edge + ramp + rng.normal(0, 0.03, (h, w))
        out.append(np.clip(16 + img / img.max() * 219, 0, 255).round().astype(np.uint8))
    return np.stack(out)


#: A noise-map denoiser's strength (σ, 8-bit steps) for its reference outputs: the Enhancer's default.
REFERENCE_STRENGTH = 25.0


def _as_input(lr_u8: np.ndarray, value_range: Sequence[float]) -> np.ndarray:
    lo, hi = float(value_range[0]), float(value_range[1])
    return (lr_u8.astype(np.float32) / 255.0 * (hi - lo) + lo).astype(np.float32)


def run_pictures(backend, lr_u8: np.ndarray) -> np.ndarray:
    """The backend's outputs (float32, n, h*s, w*s) for uint8 pictures; a fixed-size artifact gets each picture
    edge-padded to its input size, and the matching part of the output is kept."""
    m = backend.manifest
    s = int(m.scale)
    x = _as_input(lr_u8, m.value_range)
    fh, fw = m.input.hw
    outs = []
    multiple = m.noise.size_multiple if m.noise is not None else 1
    for pic in x:
        h, w = pic.shape
        feed = pic
        if fh is not None or fw is not None:
            feed = np.pad(pic, ((0, (fh or h) - h), (0, (fw or w) - w)), mode="edge")
        elif multiple > 1:  # a denoiser's stride-2 levels: sides in multiples of its size multiple
            feed = np.pad(pic, ((0, (-h) % multiple), (0, (-w) % multiple)), mode="edge")
        planes = [feed]
        if m.input_channels == 2:  # the noise-level map, at the runtime's default strength
            planes.append(np.full_like(feed, REFERENCE_STRENGTH / 255.0))
        y = backend.run(np.stack(planes, axis=-1)[None])
        outs.append(np.asarray(y, np.float32)[0, :h * s, :w * s, 0])
    lo, hi = float(m.value_range[0]), float(m.value_range[1])
    return np.clip(np.stack(outs), lo, hi)


def psnr_db(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)


def _float_sibling(artifact: Path, manifest) -> Optional[Path]:
    """The fp32 export of the same source model beside ``artifact`` (its outputs are the float model's)."""
    from deconv_edge_core.manifest import load_manifest

    src = (manifest.source_model or {}).get("sha256") if isinstance(manifest.source_model, dict) else None
    if not src:
        return None
    for candidate in sorted(artifact.parent.glob("*.json")):
        try:
            other, path = load_manifest(candidate)
        except UserError:
            continue
        if path != artifact and other.format.endswith("fp32") and (other.source_model or {}).get("sha256") == src:
            return path
    return None


def make_references(artifact: Path, manifest, config=None) -> tuple[bytes, dict]:
    """``(npz bytes, meta)`` for ``refs/NAME.npz`` / ``refs/NAME.json``, made on this (the workstation's) machine.

    Raises:
        UserError: the artifact cannot run here (no runtime for it).
    """
    from .backends import open_backend
    from .config import RuntimeConfig

    config = config or RuntimeConfig(threads=1)
    lr = reference_inputs()
    backend = open_backend(artifact, config)
    ws = run_pictures(backend, lr)
    source = "artifact"
    ref = ws
    sibling = _float_sibling(Path(artifact), manifest)
    if sibling is not None:
        try:
            ref = run_pictures(open_backend(sibling, config), lr)
            source = f"float model ({sibling.name})"
        except UserError:
            pass
    peak = float(manifest.value_range[1]) - float(manifest.value_range[0])
    expected_psnr = psnr_db(ws, ref, peak)
    expected_err = float(np.abs(ws - ref).max())
    buf = io.BytesIO()
    np.savez_compressed(buf, lr=lr, float_sr=ref.astype(np.float32), ws_sr=ws.astype(np.float32))
    desc = backend.describe()
    acc = manifest.accuracy if isinstance(manifest.accuracy, dict) else {}
    meta = {"schema": REFS_SCHEMA, "artifact": Path(artifact).name, "reference": source, "pictures": int(len(lr)),
            "lr_hw": list(lr.shape[1:]),
            "workstation": {"backend": desc.get("backend"), "runtime": desc.get("runtime"),
                            "kernels": desc.get("kernels") or desc.get("providers"),
                            "psnr_db": None if math.isinf(expected_psnr) else round(expected_psnr, 3),
                            "max_abs_error": round(expected_err, 6)},
            "tolerance": {"psnr_db": PSNR_TOL_DB, "max_abs_error": round(MAX_ERR_TOL, 6)},
            "manifest": {"psnr_vs_float_db": acc.get("psnr_vs_float_db"), "max_abs_error": acc.get("max_abs_error")}}
    return buf.getvalue(), meta


@dataclass(frozen=True)
class AccuracyResult:
    """One artifact checked against its references on this machine."""

    artifact: str
    passed: bool
    backend: str = ""
    runtime: str = ""
    psnr_db: Optional[float] = None
    expected_psnr_db: Optional[float] = None
    max_abs_error: Optional[float] = None
    expected_max_abs_error: Optional[float] = None
    vs_workstation_max: Optional[float] = None
    reference: str = ""
    reason: str = ""

    def line(self) -> str:
        def f(v, fmt):
            return "-" if v is None else "inf" if isinstance(v, float) and math.isinf(v) else format(v, fmt)
        same = ("identical to the workstation" if self.vs_workstation_max == 0 else
                f"max {f(self.vs_workstation_max, '.4f')} from the workstation's output")
        head = "accuracy ok" if self.passed else "FAILED accuracy"
        if self.reason and self.psnr_db is None:
            return f"{head}: {self.artifact}: {self.reason}"
        versus = "float" if self.reference.startswith("float") else "the workstation's output"
        return (f"{head}: {self.artifact} on {self.backend} ({self.runtime}): PSNR vs {versus} {f(self.psnr_db, '.2f')} dB "
                f"(workstation {f(self.expected_psnr_db, '.2f')}, tolerance {PSNR_TOL_DB} dB), max error "
                f"{f(self.max_abs_error, '.4f')} (workstation {f(self.expected_max_abs_error, '.4f')}, tolerance "
                f"{MAX_ERR_TOL:.4f}); {same}" + (f"; {self.reason}" if self.reason else ""))


def _read_refs(path: Path) -> tuple:
    """``lr`` (uint8 n x h x w), ``float_sr`` and ``ws_sr`` (float32 n x H x W) of a refs .npz, bounded: the file's
    size, each member's uncompressed size and the arrays' shapes are checked before anything large is read.

    Raises:
        ValueError: not what ``bundle`` writes (too large, members missing, wrong shapes or dtypes).
    """
    import zipfile

    size = path.stat().st_size
    if size > MAX_REFS_FILE_BYTES:
        raise ValueError(f"{size} bytes, larger than any real one ({MAX_REFS_FILE_BYTES} at most)")
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        for key in ("lr", "float_sr", "ws_sr"):
            info = infos.get(f"{key}.npy")
            if info is None:
                raise ValueError(f"no '{key}' array")
            if info.file_size > MAX_REFS_ARRAY_BYTES:
                raise ValueError(f"'{key}' unpacks to {info.file_size} bytes (at most {MAX_REFS_ARRAY_BYTES})")
    with np.load(path, allow_pickle=False) as z:
        lr, ref, ws = z["lr"], z["float_sr"], z["ws_sr"]
    if lr.dtype != np.uint8 or lr.ndim != 3 or not 0 < lr.shape[0] <= MAX_REFS_PICTURES \
            or max(lr.shape[1:]) > MAX_REFS_SIDE or min(lr.shape[1:]) < 1:
        raise ValueError(f"'lr' is {lr.dtype} {lr.shape}, not a few small uint8 pictures")
    for key, arr in (("float_sr", ref), ("ws_sr", ws)):
        if arr.dtype.kind != "f" or arr.ndim != 3 or arr.shape[0] != lr.shape[0]:
            raise ValueError(f"'{key}' is {arr.dtype} {arr.shape}, not {lr.shape[0]} float pictures")
    if ref.shape != ws.shape:
        raise ValueError(f"'float_sr' {ref.shape} and 'ws_sr' {ws.shape} differ")
    return lr, ref.astype(np.float32), ws.astype(np.float32)


def check_artifact(artifact: Path, refs_npz: Path, refs_json: Path, config=None) -> AccuracyResult:
    """Run ``artifact`` on its references with the backend it uses here and compare (never raises UserError)."""
    from .backends import open_backend
    from .config import RuntimeConfig
    from .limits import read_small

    name = Path(artifact).name
    try:
        meta = json.loads(read_small(refs_json, "references", MAX_REFS_FILE_BYTES))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        lr, ref, ws = _read_refs(Path(refs_npz))
        backend = open_backend(artifact, config or RuntimeConfig())
        out = run_pictures(backend, lr)
    except UserError as exc:
        return AccuracyResult(name, False, reason=str(exc))
    except (OSError, ValueError, KeyError) as exc:
        return AccuracyResult(name, False, reason=f"references unreadable ({exc.__class__.__name__}: {exc})")
    if out.shape != ref.shape:
        return AccuracyResult(name, False, reason=f"the model answers {out.shape} for the references, which expect "
                                                  f"{ref.shape}: they are not this artifact's")
    m = backend.manifest
    peak = float(m.value_range[1]) - float(m.value_range[0])
    got_psnr, got_err = psnr_db(out, ref, peak), float(np.abs(out - ref).max())
    exp = meta.get("workstation", {})
    exp_psnr, exp_err = exp.get("psnr_db"), float(exp.get("max_abs_error", 0.0))
    ok_err = got_err <= exp_err + MAX_ERR_TOL
    ok_psnr = exp_psnr is None or got_psnr >= float(exp_psnr) - PSNR_TOL_DB
    desc = backend.describe()
    reasons = []
    if not ok_psnr:
        reasons.append(f"PSNR {got_psnr:.2f} dB is more than {PSNR_TOL_DB} dB below the workstation's {exp_psnr:.2f}")
    if not ok_err:
        reasons.append(f"max error {got_err:.4f} exceeds the workstation's {exp_err:.4f} + {MAX_ERR_TOL:.4f}")
    return AccuracyResult(name, ok_psnr and ok_err, backend=str(desc.get("backend", "")),
                          runtime=str(desc.get("runtime", "")), psnr_db=round(got_psnr, 3) if not
                          math.isinf(got_psnr) else got_psnr, expected_psnr_db=exp_psnr,
                          max_abs_error=round(got_err, 6), expected_max_abs_error=exp_err,
                          vs_workstation_max=round(float(np.abs(out - ws).max()), 6),
                          reference=str(meta.get("reference", "")), reason="; ".join(reasons))


def check_folder(folder: Path, config=None) -> list[AccuracyResult]:
    """Every artifact of an unpacked bundle that has references.

    Raises:
        UserError: the folder has no ``refs/`` (a bundle made before references existed).
    """
    from ..agent.device_agent import MODELS_DIR

    folder = Path(folder)
    refs = folder / REFS_DIR
    if not refs.is_dir():
        raise UserError(f"'{folder}' has no {REFS_DIR}/ (bundled by an older deconv-edge): bundle it again")
    results = []
    for meta in sorted(refs.glob("*.json")):
        name = meta.name[:-len(".json")]
        artifact = folder / MODELS_DIR / name
        if not artifact.is_file():
            results.append(AccuracyResult(name, False, reason=f"references for {name}, which is not in the bundle"))
            continue
        results.append(check_artifact(artifact, refs / f"{name}.npz", meta, config))
    if not results:
        raise UserError(f"'{folder}/{REFS_DIR}' holds no references")
    return results


def results_json(results: Sequence[AccuracyResult]) -> dict:
    return {"schema": "deconv-edge-accuracy/1", "passed": all(r.passed for r in results),
            "results": [asdict(r) for r in results]}


__all__ = ["REFS_DIR", "PSNR_TOL_DB", "MAX_ERR_TOL", "reference_inputs", "make_references", "check_artifact",
           "check_folder", "AccuracyResult", "results_json"]
