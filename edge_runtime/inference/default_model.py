"""The model ``--model`` defaults to: the one shipped in ``edge_runtime/models/``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from deconv_edge_core.errors import UserError
from deconv_edge_core.manifest import load_manifest

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_ARTIFACT = "sesr_x2_int8.tflite"
#: Preferred formats when the named default is not shipped (smallest and fastest on a CPU first).
FORMAT_PREFERENCE = ("tflite-int8", "tflite-fp16", "tflite-fp32", "onnx-int8", "onnx-fp32")


def default_model(models_dir: Optional[Path] = None) -> Path:
    """Path of the default artifact.

    :data:`DEFAULT_ARTIFACT` (the shipped SESR-like x2 int8 file) when present; otherwise the first manifest (by
    name) in ``models_dir`` with scale 2 whose backend is installed, preferring ``tflite-int8`` (see :data:`FORMAT_PREFERENCE`).

    Raises:
        UserError: no usable scale-2 model is there.
    """
    models_dir = Path(models_dir) if models_dir is not None else MODELS_DIR
    named = models_dir / DEFAULT_ARTIFACT
    if named.is_file() and (models_dir / (DEFAULT_ARTIFACT + ".json")).is_file():
        return named
    from .backends import BACKENDS, default_backend_for, edgetpu, litert, onnxruntime  # noqa: F401 (registry)

    ranked = []
    for mpath in sorted(models_dir.glob("*.json")) if models_dir.is_dir() else []:
        try:
            manifest, artifact = load_manifest(mpath)
        except UserError:
            continue
        if manifest.scale != 2:
            continue
        unavailable = BACKENDS.get(default_backend_for(manifest)).available() is not None
        pref = FORMAT_PREFERENCE.index(manifest.format) if manifest.format in FORMAT_PREFERENCE else len(FORMAT_PREFERENCE)
        ranked.append((unavailable, pref, mpath.name, artifact))
    if not ranked:
        raise UserError(f"no default model shipped in '{models_dir}': pass --model ARTIFACT "
                        "(artifacts and their .json manifests come from 'deconv-edge convert')")
    return min(ranked)[3]


def resolve_model(model: Optional[str | Path]) -> Path:
    """``model`` as a path or a shipped name (``x3``, ``fast``, ``fsrcnn_x3_int8``; see
    :mod:`edge_runtime.inference.catalog`); ``None``/empty = the default model."""
    from .catalog import resolve

    return resolve(model).path
