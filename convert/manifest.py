"""Build :class:`edge_runtime.manifest.Manifest` objects for exported artifacts (the runtime's contract)."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from edge_runtime.fsutil import sha256_file
from edge_runtime.manifest import COLOR_SPACE_Y, SCHEMA_VERSION, Manifest, TensorSpec

TASK = "super-resolution"
VALUE_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class SourceModel:
    """The Keras model an artifact was made from.

    Attributes:
        file: file name (``None`` for an in-memory model).
        sha256: of the ``.keras`` file (``None`` for an in-memory model).
        scale: upscaling factor.
        config: the ``ModelConfig`` as a dict (read from the layers).
    """

    file: Optional[str]
    sha256: Optional[str]
    scale: int
    config: dict

    def to_dict(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "config": self.config}


def describe_model(model, path: Optional[Path] = None) -> SourceModel:
    """Hash the file and recover the ``ModelConfig`` from the layers (names as ``train.models`` builds them)."""
    from train.evaluate import model_scale
    from train.models import ModelConfig

    scale = model_scale(model)
    names = [layer.name for layer in model.layers]

    def filters(name: str) -> Optional[int]:
        return int(model.get_layer(name).filters) if name in names else None

    act_layer = next((model.get_layer(n) for n in ("feature_act", "shrink_act") if n in names), None)
    if act_layer is None or type(act_layer).__name__ == "PReLU":
        activation = "prelu"
    else:
        activation = "relu6" if getattr(act_layer, "max_value", None) == 6.0 else "relu"
    family = model.name.rsplit("_x", 1)[0] if "_x" in model.name else "fsrcnn"
    cfg = ModelConfig(name=family, scale=scale, d=filters("feature"), s=filters("shrink"),
                      m=sum(1 for n in names if n.startswith("map_") and not n.endswith("_act")),
                      activation=activation, residual="concat_lr" in names,
                      upsampler_kernel=_upsampler_kernel(model, names))
    return SourceModel(file=path.name if path else None, sha256=sha256_file(path) if path else None, scale=scale,
                       config=cfg.to_dict())


def _upsampler_kernel(model, names: list) -> Optional[int]:
    """The deconvolution's kernel size, or ``None`` for the default (keeps older manifests unchanged)."""
    from train.models.base import UPSAMPLER_KERNEL, UPSAMPLER_LAYER

    if UPSAMPLER_LAYER not in names:
        return None
    k = int(model.get_layer(UPSAMPLER_LAYER).kernel_size[0])
    return None if k == UPSAMPLER_KERNEL else k


def tool_versions(runtime: str) -> dict:
    """Versions of the tools that produced an artifact of ``runtime``."""
    from train import __version__

    mods = ["tensorflow", "keras"] + (["tf2onnx", "onnx", "onnxruntime"] if runtime == "onnx" else ["ai_edge_litert"])
    out = {"deconv_edge": __version__}
    for name in mods:
        try:
            out[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            out[name] = None
    return out


def embedded_essentials(key: str, scale: int, upsampler: str, source: SourceModel) -> dict:
    """What goes inside the artifact itself (TFLite metadata / ONNX ``metadata_props``)."""
    return {"schema_version": SCHEMA_VERSION, "format": key, "task": TASK, "scale": int(scale),
            "color_space": COLOR_SPACE_Y, "value_range": list(VALUE_RANGE), "upsampler": upsampler,
            "source_model_sha256": source.sha256}


def build_manifest(*, key: str, runtime: str, source: SourceModel, upsampler: str, artifact: Path,
                   input_spec: TensorSpec, output_spec: TensorSpec, extra: Optional[dict] = None) -> Manifest:
    """An ``unchecked`` manifest for ``artifact`` (hash and size taken from the file as it is now)."""
    return Manifest(
        format=key, runtime=runtime, scale=int(source.scale), input=input_spec, output=output_spec,
        upsampler=upsampler,
        artifact={"file": artifact.name, "sha256": sha256_file(artifact), "size_bytes": artifact.stat().st_size},
        task=TASK, color_space=COLOR_SPACE_Y, value_range=VALUE_RANGE, source_model=source.to_dict(),
        tools=tool_versions(runtime), accuracy=None, status="unchecked",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), extra=dict(extra or {}))


def with_accuracy(manifest: Manifest, accuracy: dict, passed: bool) -> Manifest:
    """The manifest with the gate's numbers and status."""
    return dataclasses.replace(manifest, accuracy=accuracy, status="passed" if passed else "failed")
