"""The artifact manifest: the one contract between ``convert`` (writes it) and ``edge_runtime`` (reads it).

Next to every artifact ``A`` sits ``A.json``. The runtime takes scale, colour space, value range, tensor
names, shapes, dtypes and quantization from here and never guesses them.

Schema version 1::

    {
      "schema_version": 1,
      "format": "tflite-int8",            # key of convert.EXPORTERS
      "runtime": "tflite",                # "tflite" | "onnx": the file type a backend must read
      "task": "super-resolution",
      "scale": 2,
      "color_space": "y-bt601-studio",    # luma by MATLAB rgb2ycbcr (PROTOCOL.md); chroma upscaled bicubic
      "value_range": [0.0, 1.0],          # model's real-valued input/output = Y / 255
      "input":  {"name": "lr", "dtype": "uint8", "shape": [1, 240, 320, 1],     # null = dynamic dim
                 "layout": "NHWC", "quantization": {"scale": 0.0039, "zero_point": 0}},  # or null (float)
      "output": {"name": "...", "dtype": "uint8", "shape": [1, 480, 640, 1], "layout": "NHWC",
                 "quantization": {...} | null},
      "upsampler": "subpixel",            # "deconv" | "subpixel"
      "artifact": {"file": "model_x2.tflite", "sha256": "...", "size_bytes": 12345},
      "source_model": {"file": "model.keras", "sha256": "...", "config": {...ModelConfig...}},
      "tools": {"deconv_edge": "0.1.0", "tensorflow": "2.21.0", ...},
      "accuracy": {"eval_data": "...", "psnr_db": 37.0, "ssim": 0.95, "psnr_vs_float_db": 55.0,
                   "max_abs_error": 0.004, "psnr_drop_db": 0.02,
                   "gate": {"metric": "psnr_drop_db", "threshold": 0.3, "passed": true}} | null,
      "status": "passed",                 # "passed" | "failed" | "unchecked"
      "created": "2026-11-24T21:00:00+00:00"
    }
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import UserError
from .fsutil import sha256_file, write_json_atomic

SCHEMA_VERSION = 1
COLOR_SPACE_Y = "y-bt601-studio"
RUNTIMES = ("tflite", "onnx")
UPSAMPLERS = ("deconv", "subpixel")
STATUSES = ("passed", "failed", "unchecked")


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. ``shape`` uses ``None`` for a dynamic dimension (NHWC)."""

    name: str
    dtype: str
    shape: tuple
    layout: str = "NHWC"
    quantization: Optional[Quantization] = None

    @property
    def is_dynamic(self) -> bool:
        return any(d is None or (isinstance(d, int) and d < 0) for d in self.shape)

    @property
    def hw(self) -> tuple:
        """(height, width); ``None`` where dynamic."""
        if self.layout == "NHWC":
            h, w = self.shape[1], self.shape[2]
        else:
            h, w = self.shape[2], self.shape[3]
        return (None if h is None or h < 0 else h, None if w is None or w < 0 else w)


@dataclass(frozen=True)
class Manifest:
    """A parsed artifact manifest (see the module docstring for the JSON form)."""

    format: str
    runtime: str
    scale: int
    input: TensorSpec
    output: TensorSpec
    upsampler: str
    artifact: dict
    task: str = "super-resolution"
    color_space: str = COLOR_SPACE_Y
    value_range: tuple = (0.0, 1.0)
    source_model: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    accuracy: Optional[dict] = None
    status: str = "unchecked"
    created: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)

    # ---- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d["value_range"] = list(self.value_range)
        for key in ("input", "output"):
            d[key]["shape"] = list(d[key]["shape"])
        order = ["schema_version", "format", "runtime", "task", "scale", "color_space", "value_range", "input",
                 "output", "upsampler", "artifact", "source_model", "tools", "accuracy", "status", "created"]
        out = {k: d[k] for k in order}
        out.update(extra)
        return out

    @classmethod
    def from_dict(cls, d: dict, where: str = "manifest") -> Manifest:
        try:
            version = int(d.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise UserError(f"{where}: schema_version {version} is not supported (this runtime reads "
                                f"{SCHEMA_VERSION}); convert the model again with this version")
            known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
            kwargs: dict[str, Any] = {k: v for k, v in d.items() if k in known}
            kwargs["extra"] = {k: v for k, v in d.items() if k not in known}
            kwargs["input"] = _tensor(d["input"])
            kwargs["output"] = _tensor(d["output"])
            kwargs["value_range"] = tuple(d.get("value_range", (0.0, 1.0)))
            kwargs["scale"] = int(d["scale"])
            m = cls(**kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{where} is malformed ({exc.__class__.__name__}: {exc}); convert the model again") from None
        m.validate(where)
        return m

    def validate(self, where: str = "manifest") -> None:
        problems = []
        if self.runtime not in RUNTIMES:
            problems.append(f"runtime '{self.runtime}' not in {RUNTIMES}")
        if self.scale not in (2, 3, 4):
            problems.append(f"scale {self.scale} not in (2, 3, 4)")
        if self.upsampler not in UPSAMPLERS:
            problems.append(f"upsampler '{self.upsampler}' not in {UPSAMPLERS}")
        if self.status not in STATUSES:
            problems.append(f"status '{self.status}' not in {STATUSES}")
        for key in ("file", "sha256"):
            if not self.artifact.get(key):
                problems.append(f"artifact.{key} missing")
        if problems:
            raise UserError(f"{where} is invalid: {'; '.join(problems)}")

    def write(self, path: str | Path) -> None:
        """Write atomically."""
        write_json_atomic(path, self.to_dict())


def _tensor(d: dict) -> TensorSpec:
    q = d.get("quantization")
    return TensorSpec(
        name=str(d["name"]),
        dtype=str(d["dtype"]),
        shape=tuple(None if (s is None or int(s) < 0) else int(s) for s in d["shape"]),
        layout=str(d.get("layout", "NHWC")),
        quantization=None if not q else Quantization(float(q["scale"]), int(q["zero_point"])),
    )


def manifest_path_for(artifact: str | Path) -> Path:
    """``model.tflite`` → ``model.tflite.json``."""
    p = Path(artifact)
    return p if p.suffix == ".json" else p.with_name(p.name + ".json")


def load_manifest(artifact_or_manifest: str | Path) -> tuple[Manifest, Path]:
    """Read the manifest of an artifact (or the manifest itself); return it and the artifact's path.

    Raises:
        UserError: missing artifact or manifest, malformed manifest.
    """
    given = Path(artifact_or_manifest)
    mpath = manifest_path_for(given)
    if not mpath.is_file():
        if not given.exists():
            raise UserError(f"model '{given}' does not exist")
        raise UserError(f"'{given}' has no manifest '{mpath.name}' beside it; artifacts come from 'deconv-edge convert'")
    try:
        data = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"manifest '{mpath}' is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"manifest '{mpath}' is not a JSON object")
    m = Manifest.from_dict(data, where=f"manifest '{mpath}'")
    artifact = mpath.with_name(m.artifact["file"])
    if not artifact.is_file():
        raise UserError(f"artifact '{artifact}' named by '{mpath}' does not exist")
    return m, artifact


def verify_artifact(manifest: Manifest, artifact: str | Path) -> None:
    """Refuse an artifact whose sha256 differs from its manifest's (tampered or truncated file)."""
    actual = sha256_file(artifact)
    if actual != manifest.artifact["sha256"]:
        raise UserError(f"'{artifact}' does not match its manifest (sha256 {actual[:12]}… != "
                        f"{manifest.artifact['sha256'][:12]}…): the file is damaged or was modified; copy it again")
