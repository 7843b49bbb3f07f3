"""The artifact manifest: the one contract between ``convert`` (writes it) and ``edge_runtime`` (reads it).

Next to every artifact ``A`` sits ``A.json``. The runtime takes scale, colour space, value range, tensor
names, shapes, dtypes and quantization from here and never guesses them.

Schema version 1::

    {
      "schema_version": 1,
      "format": "tflite-int8",            # key of convert.EXPORTERS
      "runtime": "tflite",                # "tflite" | "onnx": the file type a backend must read
      "task": "super-resolution",         # or "denoise" (scale 1), see TASK_SCALES
      "scale": 2,
      "color_space": "y-bt601-studio",    # luma by MATLAB rgb2ycbcr (PROTOCOL.md); chroma upscaled bicubic
                                          # (denoisers: "y-bt601-full", Pillow's grey; chroma kept)
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
      "created": "2026-11-24T21:00:00+00:00",
      "noise": {"model": "awgn", "sigma_range": [0, 50], "level_input": true, "size_multiple": 4}
                                          # denoise only: what noise it removes; with level_input the input has
                                          # a second channel, the noise level sigma/255 (FFDNet-style map)
    }
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import UserError
from .fsutil import sha256_file, write_json_atomic

SCHEMA_VERSION = 1
COLOR_SPACE_Y = "y-bt601-studio"
#: Full-range BT.601 luma (JPEG, Pillow ``L``): the grey denoisers are trained on; chroma is kept as it is.
COLOR_SPACE_Y_FULL = "y-bt601-full"
COLOR_SPACES = (COLOR_SPACE_Y, COLOR_SPACE_Y_FULL)
RUNTIMES = ("tflite", "onnx")
UPSAMPLERS = ("deconv", "subpixel")
STATUSES = ("passed", "failed", "unchecked")
#: The scales each task's artifacts may have (``deconv_edge_train.tasks`` registers the same tasks).
TASK_SCALES = {"super-resolution": (2, 3, 4), "denoise": (1,)}
#: Noise models a denoiser may declare (``deconv_edge_train.noise``).
NOISE_MODELS = ("awgn", "camera")
#: Largest noise level (8-bit steps) a denoiser may declare.
MAX_SIGMA = 255.0
#: A tile's halo is bounded by the tile; no network of this size sees farther.
MAX_RECEPTIVE_PX = 1024
#: Tensor dtypes an artifact's input and output may have, with the integer range of the quantized ones.
DTYPES = {"float32": None, "float16": None, "uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767)}
LAYOUTS = ("NHWC", "NCHW")
#: Largest fixed height/width a manifest may declare (low-resolution input; the output is scale times more).
MAX_SIDE = 8192
#: Largest fixed batch a manifest may declare.
MAX_BATCH = 64
#: Manifests are a few kilobytes; anything larger is refused before it is read.
MAX_MANIFEST_BYTES = 1 << 20


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
class NoiseSpec:
    """What a denoiser removes (manifest ``noise``; denoise artifacts only).

    Attributes:
        model: ``awgn`` (the protocol's Gaussian noise) or ``camera`` (signal-dependent, blurred, JPEG'd).
        sigma_range: noise levels (8-bit steps) it was trained on.
        level_input: whether the input has a second channel, the noise level σ/255 everywhere (then one
            model serves every σ and the runtime's ``--strength`` sets it).
        size_multiple: input height and width must be multiples of this (stride-2 levels); the runtime pads.
    """

    model: str
    sigma_range: tuple
    level_input: bool
    size_multiple: int = 1

    def to_dict(self) -> dict:
        return {"model": self.model, "sigma_range": list(self.sigma_range), "level_input": self.level_input,
                "size_multiple": self.size_multiple}

    @classmethod
    def from_dict(cls, d: dict) -> NoiseSpec:
        lo, hi = (float(v) for v in d["sigma_range"])
        return cls(model=str(d["model"]), sigma_range=(lo, hi), level_input=bool(d["level_input"]),
                   size_multiple=int(d.get("size_multiple", 1)))

    def problems(self) -> list:
        out = []
        if self.model not in NOISE_MODELS:
            out.append(f"noise.model '{self.model}' not in {NOISE_MODELS}")
        lo, hi = self.sigma_range
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi <= MAX_SIGMA):
            out.append(f"noise.sigma_range {list(self.sigma_range)} must be 0 <= low <= high <= {MAX_SIGMA:g}")
        if not 1 <= self.size_multiple <= 64:
            out.append(f"noise.size_multiple {self.size_multiple} must be 1..64")
        return out


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
    noise: Optional[NoiseSpec] = None
    #: farthest input pixel an output pixel depends on (from the layers, at convert time); the runtime's
    #: tiles get at least this much halo. ``None``: not recorded (older files), the task's default halo.
    receptive_radius_px: Optional[int] = None
    extra: dict = field(default_factory=dict)

    @property
    def task_label(self) -> str:
        """What the model does, for listings: ``x2`` (super-resolution) or ``denoise``."""
        return f"x{self.scale}" if self.task == "super-resolution" else self.task

    @property
    def input_channels(self) -> int:
        """Channels of the input tensor: luma, plus the noise-level map for such denoisers."""
        return 2 if self.noise is not None and self.noise.level_input else 1

    # ---- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d["value_range"] = list(self.value_range)
        d.pop("noise")
        d.pop("receptive_radius_px")
        for key in ("input", "output"):
            d[key]["shape"] = list(d[key]["shape"])
        order = ["schema_version", "format", "runtime", "task", "scale", "color_space", "value_range", "input",
                 "output", "upsampler", "artifact", "source_model", "tools", "accuracy", "status", "created"]
        out = {k: d[k] for k in order}
        if self.noise is not None:
            out["noise"] = self.noise.to_dict()
        if self.receptive_radius_px is not None:
            out["receptive_radius_px"] = self.receptive_radius_px
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
            kwargs["noise"] = None if d.get("noise") is None else NoiseSpec.from_dict(d["noise"])
            m = cls(**kwargs)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise UserError(f"{where} is malformed ({exc.__class__.__name__}: {exc}); convert the model again") from None
        m.validate(where)
        return m

    def validate(self, where: str = "manifest") -> None:
        problems = []
        if self.runtime not in RUNTIMES:
            problems.append(f"runtime '{self.runtime}' not in {RUNTIMES}")
        scales = TASK_SCALES.get(self.task)
        if scales is None:
            problems.append(f"task '{self.task}' not in {tuple(TASK_SCALES)}")
        elif self.scale not in scales:
            problems.append(f"scale {self.scale} not in {scales} for {self.task}")
        if self.color_space not in COLOR_SPACES:
            problems.append(f"color_space '{self.color_space}' not in {COLOR_SPACES}")
        if self.task == "denoise" and self.noise is None:
            problems.append("a denoise manifest needs its 'noise' block")
        if self.noise is not None:
            problems += self.noise.problems()
        r = self.receptive_radius_px
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= MAX_RECEPTIVE_PX):
            problems.append(f"receptive_radius_px {str(r)[:40]} must be a whole number 0..{MAX_RECEPTIVE_PX}")
        if self.upsampler not in UPSAMPLERS:
            problems.append(f"upsampler '{self.upsampler}' not in {UPSAMPLERS}")
        if self.status not in STATUSES:
            problems.append(f"status '{self.status}' not in {STATUSES}")
        for key in ("file", "sha256"):
            if not self.artifact.get(key):
                problems.append(f"artifact.{key} missing")
        name = self.artifact.get("file")
        # The artifact sits beside its manifest: a path ("../x", "/etc/passwd") would read outside it.
        if name and (not isinstance(name, str) or "/" in name or "\\" in name or name in (".", "..")
                     or "\x00" in name or len(name) > 255):
            problems.append(f"artifact.file '{str(name)[:80]}' must be a plain file name beside the manifest")
        problems += _value_range_problems(self.value_range)
        for key, spec, channels in (("input", self.input, self.input_channels), ("output", self.output, 1)):
            problems += _spec_problems(key, spec, channels)
        problems += _scale_problems(self.input, self.output, self.scale)
        if problems:
            raise UserError(f"{where} is invalid: {'; '.join(problems)}")

    def write(self, path: str | Path) -> None:
        """Write atomically."""
        write_json_atomic(path, self.to_dict())


def _value_range_problems(value_range) -> list:
    if len(value_range) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value_range):
        return [f"value_range {list(value_range)} must be two finite numbers"]
    lo, hi = value_range
    return [] if hi > lo else [f"value_range [{lo}, {hi}] is empty (the second number must be larger)"]


def _spec_problems(key: str, spec: TensorSpec, want_channels: int = 1) -> list:
    """A tensor spec that no converter writes: unknown dtype, non-4-D or absurd shape, broken quantization."""
    problems = []
    if spec.dtype not in DTYPES:
        problems.append(f"{key}.dtype '{spec.dtype}' not in {tuple(DTYPES)}")
    if spec.layout not in LAYOUTS:
        problems.append(f"{key}.layout '{spec.layout}' not in {LAYOUTS}")
    if len(spec.shape) != 4:
        return problems + [f"{key}.shape {list(spec.shape)} must have 4 dimensions ({spec.layout})"]
    channels = spec.shape[3] if spec.layout == "NHWC" else spec.shape[1]
    if channels not in (None, want_channels):
        what = "one (luma) channel" if want_channels == 1 else "luma and the noise-level map (2 channels)"
        problems.append(f"{key}.shape {list(spec.shape)}: expected {what}")
    batch = spec.shape[0]
    if batch is not None and not 1 <= batch <= MAX_BATCH:
        problems.append(f"{key}.shape {list(spec.shape)}: batch must be 1..{MAX_BATCH}")
    for side in spec.hw:
        if side is not None and not 1 <= side <= MAX_SIDE * 4:
            problems.append(f"{key}.shape {list(spec.shape)}: height and width must be 1..{MAX_SIDE} (input)")
            break
    q = spec.quantization
    if q is not None:
        limits = DTYPES.get(spec.dtype)
        if not (math.isfinite(q.scale) and q.scale > 0):
            problems.append(f"{key}.quantization.scale {q.scale} must be a positive finite number")
        if limits is None:
            problems.append(f"{key}: a {spec.dtype} tensor cannot have quantization parameters")
        elif not limits[0] <= q.zero_point <= limits[1]:
            problems.append(f"{key}.quantization.zero_point {q.zero_point} is outside {spec.dtype}'s range")
    elif DTYPES.get(spec.dtype) is not None:
        problems.append(f"{key}: a {spec.dtype} tensor needs quantization parameters")
    return problems


def _scale_problems(inp: TensorSpec, out: TensorSpec, scale: int) -> list:
    if len(inp.shape) != 4 or len(out.shape) != 4:
        return []
    problems = []
    if inp.hw[0] is not None and inp.hw[0] > MAX_SIDE or inp.hw[1] is not None and inp.hw[1] > MAX_SIDE:
        problems.append(f"input.shape {list(inp.shape)}: height and width must be 1..{MAX_SIDE}")
    for a, b in zip(inp.hw, out.hw):
        if a is not None and b is not None and b != a * scale:
            problems.append(f"output.shape {list(out.shape)} is not scale {scale} times input.shape "
                            f"{list(inp.shape)}")
            break
    return problems


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
        size = mpath.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise UserError(f"manifest '{mpath}' is {size / 2**20:.0f} MB: real manifests are a few KB; "
                            "convert the model again")
        data = json.loads(mpath.read_bytes()[:MAX_MANIFEST_BYTES])
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"manifest '{mpath}' is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"manifest '{mpath}' is not a JSON object")
    m = Manifest.from_dict(data, where=f"manifest '{mpath}'")
    artifact = mpath.with_name(m.artifact["file"])
    if not artifact.is_file():
        raise UserError(f"artifact '{artifact}' named by '{mpath}' does not exist")
    return m, artifact


#: Files up to this size are also read whole for their embedded essentials (artifacts are a few MB at most).
EMBEDDED_CHECK_MAX_BYTES = 256 << 20


def verify_artifact(manifest: Manifest, artifact: str | Path) -> None:
    """Refuse an artifact whose sha256 differs from its manifest's (tampered or truncated file), or whose
    embedded essentials (scale, format, upsampler, ...; see :mod:`deconv_edge_core.embedded`) contradict it."""
    from .embedded import embedded_mismatches, read_embedded

    actual = sha256_file(artifact)
    if actual != manifest.artifact["sha256"]:
        raise UserError(f"'{artifact}' does not match its manifest (sha256 {actual[:12]}… != "
                        f"{manifest.artifact['sha256'][:12]}…): the file is damaged or was modified; copy it again")
    path = Path(artifact)
    if path.stat().st_size > EMBEDDED_CHECK_MAX_BYTES:
        return
    embedded = read_embedded(path.read_bytes(), manifest.runtime)
    wrong = embedded_mismatches(embedded, manifest) if embedded else []
    if wrong:
        raise UserError(f"'{path.name}' says otherwise than its manifest ({'; '.join(wrong)}): the manifest was "
                        "edited or belongs to another artifact; convert the model again")
