"""Build :class:`deconv_edge_core.manifest.Manifest` objects for exported artifacts (the runtime's contract)."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from deconv_edge_core.fsutil import sha256_file
from deconv_edge_core.manifest import (
    COLOR_SPACE_Y,
    COLOR_SPACE_Y_FULL,
    SCHEMA_VERSION,
    Manifest,
    NoiseSpec,
    TensorSpec,
)

TASK = "super-resolution"
#: The layer every denoiser ends in (``deconv_edge_train.models.rednet``): picture + predicted residual.
DENOISED_LAYER = "denoised"
VALUE_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class SourceModel:
    """The Keras model an artifact was made from.

    Attributes:
        file: file name (``None`` for an in-memory model).
        sha256: of the ``.keras`` file (``None`` for an in-memory model).
        scale: upscaling factor (1 for a denoiser).
        config: the ``ModelConfig`` as a dict.
        config_source: ``stored`` (read from the ``.keras`` file, where training put it) or ``layer names``
            (recovered from an older file or an in-memory model).
        task: ``super-resolution`` or ``denoise``.
        noise: a denoiser's noise (what it was trained to remove), else ``None``.
    """

    file: Optional[str]
    sha256: Optional[str]
    scale: int
    config: dict
    config_source: str = "stored"
    task: str = TASK
    noise: Optional[NoiseSpec] = None
    receptive_radius_px: Optional[int] = None

    @property
    def size_multiple(self) -> int:
        return self.noise.size_multiple if self.noise is not None else 1

    def to_dict(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "config": self.config, "config_source": self.config_source}


def describe_model(model, path: Optional[Path] = None) -> SourceModel:
    """Hash the file and take its ``ModelConfig``: the one training stored in the ``.keras`` file, else (a file
    written before configs were stored, or an in-memory model) one recovered from the layer names."""
    from deconv_edge_train.evaluate import model_scale
    from deconv_edge_train.models.receptive import receptive_radius_px
    from deconv_edge_train.models.stored import read_config

    names = [layer.name for layer in model.layers]
    radius = receptive_radius_px(model)
    if DENOISED_LAYER in names:
        return dataclasses.replace(_describe_denoiser(model, path, names), receptive_radius_px=radius)
    scale = model_scale(model)
    stored = read_config(path) if path else None
    if stored is not None:
        if stored.scale != scale:
            from deconv_edge_core.errors import UserError

            raise UserError(f"'{path}' stores scale {stored.scale} but its upsampler has stride {scale}")
        cfg, source = stored, "stored"
    else:
        cfg, source = config_from_layers(model, scale), "layer names"
    return SourceModel(file=path.name if path else None, sha256=sha256_file(path) if path else None, scale=scale,
                       config=cfg.to_dict(), config_source=source, receptive_radius_px=radius)


def config_from_layers(model, scale: int):
    """The ``ModelConfig`` of an FSRCNN-family model rebuilt from its layer names (the fallback for files
    without a stored config; names as ``deconv_edge_train.models`` builds them)."""
    from deconv_edge_train.models import ModelConfig

    names = [layer.name for layer in model.layers]

    def filters(name: str) -> Optional[int]:
        return int(model.get_layer(name).filters) if name in names else None

    act_layer = next((model.get_layer(n) for n in ("feature_act", "shrink_act") if n in names), None)
    if act_layer is None or type(act_layer).__name__ == "PReLU":
        activation = "prelu"
    else:
        activation = "relu6" if getattr(act_layer, "max_value", None) == 6.0 else "relu"
    family = model.name.rsplit("_x", 1)[0] if "_x" in model.name else "fsrcnn"
    return ModelConfig(name=family, scale=scale, d=filters("feature"), s=filters("shrink"),
                       m=sum(1 for n in names if n.startswith("map_") and not n.endswith("_act")),
                       activation=activation, residual="concat_lr" in names,
                       upsampler_kernel=_upsampler_kernel(model, names))


def _describe_denoiser(model, path: Optional[Path], names: list) -> SourceModel:
    """A denoiser's ``ModelConfig`` from its layers, and the noise it was trained on (the training sampler's
    AWGN range, ``deconv_edge_train.noise``)."""
    from deconv_edge_train.models import MODELS, ModelConfig
    from deconv_edge_train.models.stored import read_config
    from deconv_edge_train.noise import SIGMA_MAX

    family = model.name.rsplit("_x", 1)[0] if "_x" in model.name else "rednet"
    channels = int(model.inputs[0].shape[-1])
    stored = read_config(path) if path else None
    cfg = stored if stored is not None else ModelConfig(name=family, scale=1, d=int(model.get_layer("enc_1").filters) if "enc_1" in names else None,
                      m=sum(1 for n in names if n.startswith("mid_") and not n.endswith("_act")),
                      activation="relu", residual=True, noise_map=channels == 2)
    multiple = int(getattr(MODELS.get(family), "size_multiple", 1)) if family in MODELS.names() else 1
    noise = NoiseSpec(model=cfg.noise, sigma_range=(0.0, SIGMA_MAX), level_input=channels == 2, size_multiple=multiple)
    return SourceModel(file=path.name if path else None, sha256=sha256_file(path) if path else None, scale=1,
                       config=cfg.to_dict(), config_source="stored" if stored is not None else "layer names",
                       task="denoise", noise=noise)


def _upsampler_kernel(model, names: list) -> Optional[int]:
    """The deconvolution's kernel size, or ``None`` for the default (keeps older manifests unchanged)."""
    from deconv_edge_train.models.base import UPSAMPLER_KERNEL, UPSAMPLER_LAYER

    if UPSAMPLER_LAYER not in names:
        return None
    k = int(model.get_layer(UPSAMPLER_LAYER).kernel_size[0])
    return None if k == UPSAMPLER_KERNEL else k


def tool_versions(runtime: str) -> dict:
    """Versions of the tools that produced an artifact of ``runtime``."""
    from deconv_edge_core import __version__

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
    return {"schema_version": SCHEMA_VERSION, "format": key, "task": source.task, "scale": int(scale),
            "color_space": _color_space(source), "value_range": list(VALUE_RANGE), "upsampler": upsampler,
            "source_model_sha256": source.sha256}


def _color_space(source: SourceModel) -> str:
    """Denoisers are trained on Pillow's full-range grey; the SR models on MATLAB's studio-range luma."""
    return COLOR_SPACE_Y_FULL if source.task == "denoise" else COLOR_SPACE_Y


def build_manifest(*, key: str, runtime: str, source: SourceModel, upsampler: str, artifact: Path,
                   input_spec: TensorSpec, output_spec: TensorSpec, extra: Optional[dict] = None) -> Manifest:
    """An ``unchecked`` manifest for ``artifact`` (hash and size taken from the file as it is now)."""
    return Manifest(
        format=key, runtime=runtime, scale=int(source.scale), input=input_spec, output=output_spec,
        upsampler=upsampler,
        artifact={"file": artifact.name, "sha256": sha256_file(artifact), "size_bytes": artifact.stat().st_size},
        task=source.task, noise=source.noise, receptive_radius_px=source.receptive_radius_px,
        color_space=_color_space(source), value_range=VALUE_RANGE,
        source_model=source.to_dict(),
        tools=tool_versions(runtime), accuracy=None, status="unchecked",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), extra=dict(extra or {}))


def with_accuracy(manifest: Manifest, accuracy: dict, passed: bool) -> Manifest:
    """The manifest with the gate's numbers and status (an Edge TPU file also says where its gate ran)."""
    extra = dict(manifest.extra)
    if isinstance(extra.get("edgetpu"), dict):
        extra["edgetpu"] = {**extra["edgetpu"], "gate_backend": accuracy.get("backend")}
    return dataclasses.replace(manifest, accuracy=accuracy, status="passed" if passed else "failed", extra=extra)
