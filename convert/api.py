"""Python API of ``deconv-edge convert``.

Two entry points, both stable:

``export_one(keras_model, key, out_dir, config=ExportConfig(), calib=None) -> Path``
    Export one format (a key of :data:`convert.exporters.EXPORTERS`) of a Keras model (a ``keras.Model`` or a
    ``.keras`` path) into ``out_dir``; writes the artifact and its manifest (status ``unchecked``: no accuracy
    gate) and returns the artifact's path. ``calib`` (formats that need calibration only) is a
    :class:`~convert.calibration.CalibrationSet`, a sequence of image folders, or ``None`` for scikit-image's
    sample photographs (real pictures, never noise). Meant for small artifacts in test fixtures, e.g.
    ``export_one(build_model(ModelConfig("fsrcnn-s", 2, d=8, s=4, m=1)), "tflite-int8", tmp_path,
    ExportConfig(calib_samples=8))``.

``convert(model_path, formats, calib_dirs, eval_dirs, out_dir, config=ExportConfig()) -> ConvertReport``
    The whole command: every requested format, each gated on the eval pictures through its runtime backend,
    manifests, ``report.md`` and ``report.json``. A failing artifact is marked failed and the rest still run;
    ``report.passed`` is False then.

Writes are atomic: each artifact is produced and gated in a hidden staging folder inside ``out_dir`` and
renamed into place; a failed gate never replaces an artifact whose manifest says ``passed`` (the new file
goes beside it as ``NAME.rejected.EXT``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from edge_runtime.errors import UserError
from edge_runtime.fsutil import sha256_file
from edge_runtime.manifest import Manifest, load_manifest, manifest_path_for

from .exporters import EXPORTERS, GATE_PSNR_DROP, Exporter, ExportJob, ExportResult

ALL = "all"
AUTO = "auto"
UPSAMPLER_CHOICES = (AUTO, "deconv", "subpixel")
#: Fixed input of the Edge TPU artifact when ``--input-size`` is not given (QVGA, landscape).
DEFAULT_EDGETPU_SIZE_HW = (240, 320)
MAX_INPUT_SIDE = 8192


@dataclass(frozen=True)
class ExportConfig:
    """How to export.

    Attributes:
        input_size_hw: fixed input ``(H, W)`` for every artifact; ``None`` = dynamic where the format allows
            (the Edge TPU then gets :data:`DEFAULT_EDGETPU_SIZE_HW`).
        upsampler: ``auto`` (sub-pixel for CPU/GPU formats, deconvolution for the Edge TPU), ``deconv`` or
            ``subpixel``.
        max_psnr_drop_db: overrides every PSNR-drop gate (fp16, dynamic, int8, edgetpu); fp32 keeps max abs.
        calib_samples: calibration crops (the CLI requires >= 100; tests may use fewer).
        calib_size_hw: crop size for dynamic-size artifacts (fixed-size ones use their input size).
        options: per-format options ``((format, name, value), ...)``.
        split_concat: for int8-weight formats, split the residual concat into per-group upsampler
            convolutions and write the LR group's weights as hi + lo (see ``convert.rewrite``).
        threads: CPU threads for the gate's runtime (``None`` = runtime default).
        seed: calibration crop positions.
        batch: batch dimension of every artifact (``None`` = dynamic, e.g. batched tiles); the Edge TPU
            always gets 1.
    """

    input_size_hw: Optional[tuple] = None
    upsampler: str = AUTO
    max_psnr_drop_db: Optional[float] = None
    calib_samples: int = 128
    calib_size_hw: tuple = (96, 96)
    options: tuple = ()
    split_concat: bool = True
    threads: Optional[int] = None
    seed: int = 0
    batch: Optional[int] = 1

    def __post_init__(self):
        if self.upsampler not in UPSAMPLER_CHOICES:
            raise UserError(f"unknown upsampler '{self.upsampler}'; valid: {', '.join(UPSAMPLER_CHOICES)}")
        if self.input_size_hw is not None:
            check_size(self.input_size_hw)
        if self.max_psnr_drop_db is not None and not self.max_psnr_drop_db >= 0:
            raise UserError(f"--max-psnr-drop must be >= 0 dB, got {self.max_psnr_drop_db}")
        if self.batch is not None and self.batch < 1:
            raise UserError(f"batch must be >= 1 or None (dynamic), got {self.batch}")
        if self.calib_samples < 1:
            raise UserError(f"calib_samples must be >= 1, got {self.calib_samples}")

    def upsampler_for(self, exporter: Exporter) -> str:
        return exporter.default_upsampler if self.upsampler == AUTO else self.upsampler

    def input_shape_for(self, exporter: Exporter) -> tuple:
        size = self.input_size_hw or (DEFAULT_EDGETPU_SIZE_HW if exporter.static_shape else None)
        batch = 1 if exporter.static_shape else self.batch
        if size is None:
            return (batch, None, None, 1)  # the litert backend resizes H and W per frame size
        return (batch, int(size[0]), int(size[1]), 1)

    def gate_for(self, exporter: Exporter):
        from .check import Gate

        threshold = exporter.gate_threshold
        if exporter.gate_metric == GATE_PSNR_DROP and self.max_psnr_drop_db is not None:
            threshold = float(self.max_psnr_drop_db)
        return Gate(exporter.gate_metric, threshold)

    def options_for(self, exporter: Exporter) -> tuple:
        given = {name: value for key, name, value in self.options if key == exporter.key}
        return exporter.resolve_options(given)


def check_size(size_hw) -> tuple:
    try:
        h, w = (int(v) for v in size_hw)
    except (TypeError, ValueError):
        raise UserError(f"input size {size_hw!r} is not (height, width)") from None
    if not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
        raise UserError(f"input size {h}x{w} is out of range (1..{MAX_INPUT_SIDE} per side)")
    return h, w


def parse_input_size(text: str) -> tuple:
    """``"240x320"`` → ``(240, 320)`` (height x width)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m:
        raise UserError(f"bad --input-size '{text}': expected HxW, e.g. 240x320")
    return check_size((int(m.group(1)), int(m.group(2))))


def parse_formats(spec: str | Sequence[str]) -> list[str]:
    """``"all"`` or a comma-separated list of format keys → validated keys in registry order of mention."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) for s in s.split(",")]
    items = [s for s in items if s]
    if not items:
        raise UserError(f"no format given; valid: {ALL}, {', '.join(EXPORTERS.names())}")
    if ALL in items:
        return EXPORTERS.names()
    out = []
    for key in items:
        EXPORTERS.get(key)  # one-line error listing the valid formats
        if key not in out:
            out.append(key)
    return out


def parse_option(text: str) -> tuple:
    """``"tflite-int8.io_dtype=int8"`` → ``("tflite-int8", "io_dtype", "int8")`` (format and name checked)."""
    m = re.fullmatch(r"([\w-]+)\.(\w+)=(.+)", text.strip())
    if not m:
        raise UserError(f"bad --option '{text}': expected FORMAT.NAME=VALUE, e.g. tflite-int8.io_dtype=int8")
    key, name, value = m.groups()
    exp = EXPORTERS.get(key)
    exp.resolve_options({name: value})
    return key, name, value


# ---- calibration ------------------------------------------------------------------------------------------
class _CalibProvider:
    """Calibration sets per crop size, built lazily from one list of pictures."""

    def __init__(self, images, scale: int, config: ExportConfig, source: str, fixed=None):
        self.images, self.scale, self.config, self.source, self.fixed = images, scale, config, source, fixed
        self._cache: dict = {}

    def get(self, size_hw: tuple):
        if self.fixed is not None:
            return self.fixed
        if size_hw not in self._cache:
            from .calibration import build_calibration

            self._cache[size_hw] = build_calibration(self.images, self.scale, size_hw, self.config.calib_samples,
                                                     self.config.seed, self.source)
        return self._cache[size_hw]


def _calib_provider(calib, scale: int, config: ExportConfig) -> _CalibProvider:
    from .calibration import CalibrationSet, load_images

    if isinstance(calib, CalibrationSet):
        return _CalibProvider(None, scale, config, calib.source, fixed=calib)
    dirs = ["builtin"] if calib is None else [str(d) for d in calib]
    return _CalibProvider(load_images(dirs, "calibration"), scale, config, ",".join(dirs))


# ---- one artifact -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Staged:
    """An artifact and its unchecked manifest, written in the staging folder."""

    exporter: Exporter
    path: Path
    manifest: Manifest
    result: ExportResult
    upsampler: str


def artifact_name(stem: str, exporter: Exporter) -> str:
    return f"{stem}{exporter.suffix}"


def _op_counts(ops: Sequence[str]) -> dict:
    counts: dict = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return counts


def _tflite_calib_mse(path: Path, calib_set, refs: Sequence[np.ndarray]) -> float:
    """Mean squared error of a full-integer TFLite file against ``refs`` (the float model's clipped outputs
    on the calibration samples)."""
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


def _stage(model, source, exporter: Exporter, config: ExportConfig, calib: Optional[_CalibProvider],
           stage_dir: Path, name: str) -> Staged:
    from .manifest import build_manifest, embedded_essentials
    from .rewrite import rewrite_upsampler, upsampler_feature_max

    form = config.upsampler_for(exporter)
    options = config.options_for(exporter)
    shape = config.input_shape_for(exporter)
    calib_set = None
    if exporter.needs_calibration:
        if calib is None:
            raise UserError(f"format '{exporter.key}' needs calibration images: pass --calib DIR")
        calib_set = calib.get(tuple(shape[1:3]) if shape[1] is not None else tuple(config.calib_size_hw))
    work = stage_dir / f"work-{exporter.key}"
    work.mkdir(parents=True, exist_ok=True)
    path = stage_dir / name
    # The int8 rewrites only pay off with int8 weights; float graphs stay as trained (one upsampler).
    int8 = exporter.int8_weights and config.split_concat
    meta = embedded_essentials(exporter.key, source.scale, form, source)
    rewrites = ["split_concat", "residual_hi_lo_weights"] if int8 else []
    job = ExportJob(model=rewrite_upsampler(model, form, split_concat=int8, int8_split=int8), input_shape=shape,
                    dest=path, work_dir=work, calib=calib_set, options=options, metadata=meta)
    result = exporter.export(job)
    if int8 and exporter.runtime == "tflite" and exporter.full_integer and calib_set is not None:
        # Two int8 forms of the upsampler; which rounds less depends on the trained weights, so both are
        # built and the one closer to the float model on the calibration pictures is kept (see convert.rewrite).
        fmax = upsampler_feature_max(model, calib_set)
        anchored = rewrite_upsampler(model, form, nearest_anchor=True, feature_max=fmax)
        alt_path = work / f"anchored-{name}"
        alt_job = dataclasses.replace(job, model=anchored, dest=alt_path)
        alt_result = exporter.export(alt_job)
        refs = [np.clip(np.asarray(model(x), np.float64), 0.0, 1.0) for x in calib_set]
        err_split, err_anchor = (_tflite_calib_mse(p, calib_set, refs) for p in (path, alt_path))
        if err_anchor < err_split:
            os.replace(alt_path, path)
            result, rewrites = alt_result, ["nearest_anchor", "features_on_input_grid"]
        note = (f"int8 upsampler: {rewrites[0]} (calibration MSE vs float: split {err_split:.3g}, "
                f"nearest anchor {err_anchor:.3g})")
        result = dataclasses.replace(result, notes=tuple(result.notes) + (note,))
    rewrites += ["output_on_display_grid"] if exporter.full_integer else []
    extra = {"ops": _op_counts(result.ops), "notes": list(result.notes), "options": dict(options),
             "graph_rewrites": rewrites}
    if calib_set is not None:
        extra["calibration"] = {"data": calib_set.source, "samples": len(calib_set),
                                "size_hw": list(calib_set.size_hw)}
    extra.update(result.extra)
    manifest = build_manifest(key=exporter.key, runtime=exporter.runtime, source=source, upsampler=form,
                              artifact=path, input_spec=result.input, output_spec=result.output, extra=extra)
    manifest.write(manifest_path_for(path))
    return Staged(exporter, path, manifest, result, form)


def _has_passing_artifact(path: Path) -> bool:
    try:
        manifest, _ = load_manifest(path)
    except UserError:
        return False
    return manifest.status == "passed" and sha256_file(path) == manifest.artifact.get("sha256")


def _publish(staged: Staged, out_dir: Path, manifest: Manifest) -> tuple[Path, bool]:
    """Rename the staged artifact into ``out_dir`` and write its manifest; returns (path, kept_previous).

    A failed artifact never replaces one whose manifest says ``passed``: it goes beside it as
    ``NAME.rejected.EXT``.
    """
    final = out_dir / staged.path.name
    kept = manifest.status == "failed" and _has_passing_artifact(final)
    if kept:
        final = final.with_name(f"{final.stem}.rejected{final.suffix}")
        manifest = dataclasses.replace(manifest, artifact={**manifest.artifact, "file": final.name})
    # Artifact first, then its manifest: in between, the old manifest's sha256 makes the runtime refuse the
    # new file rather than run it with stale parameters.
    os.replace(staged.path, final)
    manifest.write(manifest_path_for(final))
    return final, kept


def _out_dir(path: str | Path) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder '{out}': {exc.strerror or exc}") from None
    return out


def _load_model(keras_model):
    from train.evaluate import load_keras_model

    if isinstance(keras_model, (str, Path)):
        path = Path(keras_model)
        return load_keras_model(path), path
    return keras_model, None


def export_one(keras_model, key: str, out_dir: str | Path, config: ExportConfig = ExportConfig(),
               calib=None) -> Path:
    """Export one format without the accuracy gate; see the module docstring. Returns the artifact path.

    Args:
        keras_model: a ``keras.Model`` built by ``train.models`` (or a ``.keras`` path).
        key: a key of ``EXPORTERS``.
        out_dir: destination folder (created).
        config: export options.
        calib: ``CalibrationSet``, image folders, or ``None`` (scikit-image photos); used only by formats that
            need calibration.

    Raises:
        UserError: unknown format, unusable model, bad options.
    """
    from .manifest import describe_model

    exporter = EXPORTERS.get(key)
    model, path = _load_model(keras_model)
    source = describe_model(model, path)
    provider = _calib_provider(calib, source.scale, config) if exporter.needs_calibration else None
    out = _out_dir(out_dir)
    stage_dir = Path(tempfile.mkdtemp(prefix=".convert-", dir=out))
    try:
        staged = _stage(model, source, exporter, config, provider, stage_dir,
                        artifact_name(path.stem if path else model.name, exporter))
        final, _ = _publish(staged, out, staged.manifest)
        return final
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)


# ---- the whole command ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArtifactReport:
    """One row of the report."""

    format: str
    status: str  # passed | failed | error
    file: Optional[str] = None
    size_bytes: Optional[int] = None
    upsampler: Optional[str] = None
    input_shape: Optional[list] = None
    ops: dict = field(default_factory=dict)
    accuracy: Optional[dict] = None
    notes: tuple = ()
    error: Optional[str] = None
    kept_previous: bool = False

    def to_dict(self) -> dict:
        return {"format": self.format, "status": self.status, "file": self.file, "size_bytes": self.size_bytes,
                "upsampler": self.upsampler, "input_shape": self.input_shape, "ops": self.ops,
                "accuracy": self.accuracy, "notes": list(self.notes), "error": self.error,
                "kept_previous": self.kept_previous}


@dataclass(frozen=True)
class ConvertReport:
    """What ``convert`` did (``report.json`` is :meth:`to_dict`)."""

    model: str
    model_sha256: str
    scale: int
    out_dir: str
    eval_data: str
    calib_data: Optional[str]
    float_psnr_db: float
    float_ssim: float
    artifacts: tuple

    @property
    def passed(self) -> bool:
        return all(a.status == "passed" for a in self.artifacts)

    def to_dict(self) -> dict:
        return {"model": self.model, "model_sha256": self.model_sha256, "scale": self.scale,
                "out_dir": self.out_dir, "eval_data": self.eval_data, "calib_data": self.calib_data,
                "float": {"psnr_db": self.float_psnr_db, "ssim": self.float_ssim}, "passed": self.passed,
                "artifacts": [a.to_dict() for a in self.artifacts]}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def convert(model_path: str | Path, formats: str | Sequence[str], calib_dirs: Sequence[str] | None,
            eval_dirs: Sequence[str], out_dir: str | Path, config: ExportConfig = ExportConfig(),
            progress: Optional[Callable[[str], None]] = None) -> ConvertReport:
    """Convert ``model_path`` to every format in ``formats``, gate each one, write manifests and the report.

    Raises:
        UserError: bad input (model, formats, folders, options) before anything is written.
    """
    from .calibration import load_images
    from .check import EvalSet
    from .manifest import describe_model
    from .report import write_reports

    say = progress or (lambda _msg: None)
    keys = parse_formats(formats)
    exporters = [EXPORTERS.get(k) for k in keys]
    for exp in exporters:
        config.options_for(exp)  # unknown options fail before any work
    model, path = _load_model(Path(model_path))
    source = describe_model(model, path)
    eval_images = load_images(list(eval_dirs or []), "eval")
    eval_set = EvalSet.from_images(eval_images, source.scale, ",".join(map(str, eval_dirs)))
    provider = None
    if any(e.needs_calibration for e in exporters):
        if not calib_dirs:
            need = ", ".join(e.key for e in exporters if e.needs_calibration)
            verb = "needs" if "," not in need else "need"
            raise UserError(f"{need} {verb} calibration images: pass --calib DIR")
        provider = _calib_provider(list(calib_dirs), source.scale, config)
    out = _out_dir(out_dir)

    s = source.scale
    float_psnr, float_ssim = eval_set.float_quality(model)
    say(f"{path.name}: x{s}, float Keras PSNR {float_psnr:.2f} dB on {len(eval_set.pictures)} eval picture(s)")

    rows = []
    stage_dir = Path(tempfile.mkdtemp(prefix=".convert-", dir=out))
    try:
        for exp in exporters:
            rows.append(_convert_one(exp, model, source, config, provider, eval_set, stage_dir, out, path.stem,
                                     say))
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
    report = ConvertReport(model=str(path), model_sha256=source.sha256 or "", scale=s, out_dir=str(out),
                           eval_data=eval_set.source,
                           calib_data=",".join(map(str, calib_dirs)) if provider else None,
                           float_psnr_db=float_psnr, float_ssim=float_ssim, artifacts=tuple(rows))
    write_reports(report, out)
    return report


def _convert_one(exp, model, source, config, provider, eval_set, stage_dir, out, stem, say) -> ArtifactReport:
    """Stage, gate and publish one format; any failure becomes an ``error`` row (the others still run)."""
    from .check import check_artifact
    from .manifest import with_accuracy

    try:
        staged = _stage(model, source, exp, config, provider, stage_dir, artifact_name(stem, exp))
        acc = check_artifact(staged.path, model, eval_set, config.gate_for(exp), config.threads)
        manifest = with_accuracy(staged.manifest, acc.to_dict(), acc.passed)
        final, kept = _publish(staged, out, manifest)
    except Exception as exc:  # noqa: BLE001 - one format failing must not stop the others
        if os.environ.get("DECONV_EDGE_DEBUG"):
            traceback.print_exc(file=sys.stderr)
        msg = str(exc) if isinstance(exc, UserError) else _one_line(exc)
        say(f"{exp.key:<15} ERROR  {msg}")
        return ArtifactReport(format=exp.key, status="error", error=msg)
    status = "passed" if acc.passed else "failed"
    gate = acc.to_dict()["gate"]
    say(f"{exp.key:<15} {status.upper():<6} {final.name}  PSNR {acc.psnr_db:.2f} dB  drop {acc.psnr_drop_db:+.3f} dB"
        f"  max abs {acc.max_abs_error:.2e}  ({gate['metric']} <= {gate['threshold']:g})"
        + ("  [kept the previous passing artifact]" if kept else ""))
    return ArtifactReport(format=exp.key, status=status, file=final.name, size_bytes=final.stat().st_size,
                          upsampler=staged.upsampler, input_shape=list(staged.result.input.shape),
                          ops=_op_counts(staged.result.ops), accuracy=acc.to_dict(), notes=staged.result.notes,
                          kept_previous=kept)
