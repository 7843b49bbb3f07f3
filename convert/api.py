"""Python API of ``deconv-edge convert``.

Two entry points, both stable:

``export_one(keras_model, key, out_dir, config=ExportConfig(), calib=None) -> Path``
    Export one format (a key of :data:`deconv_edge_convert.exporters.EXPORTERS`) of a Keras model (a ``keras.Model`` or a
    ``.keras`` path) into ``out_dir``; writes the artifact and its manifest (status ``unchecked``: no accuracy
    gate) and returns the artifact's path. ``calib`` (formats that need calibration only) is a
    :class:`~deconv_edge_convert.calibration.CalibrationSet`, a sequence of image folders, or ``None`` for scikit-image's
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
import functools
import os
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import sha256_file
from deconv_edge_core.manifest import Manifest, load_manifest, manifest_path_for
from deconv_edge_core.text import one_line

# The options and their parsers live in .config; importing them from here keeps working.
from .config import (  # noqa: F401
    ALL,
    AUTO,
    DEFAULT_EDGETPU_SIZE_HW,
    MAX_INPUT_SIDE,
    UPSAMPLER_CHOICES,
    ExportConfig,
    check_size,
    denoiser_input_shape,
    parse_formats,
    parse_input_size,
    parse_option,
)
from .exporters import EXPORTERS, Exporter, ExportJob, ExportResult

#: ``ExportConfig()``: the defaults (frozen, so one shared instance is safe).
DEFAULT_CONFIG = ExportConfig()


# ---- calibration ------------------------------------------------------------------------------------------
class _CalibProvider:
    """Calibration sets per crop size, built lazily from one list of pictures."""

    def __init__(self, images, scale: int, config: ExportConfig, source: str, fixed=None, degradation=None):
        self.images, self.scale, self.config, self.source, self.fixed = images, scale, config, source, fixed
        self.degradation = degradation
        self._cache: dict = {}

    def get(self, size_hw: tuple):
        if self.fixed is not None:
            return self.fixed
        if size_hw not in self._cache:
            from .calibration import build_calibration

            self._cache[size_hw] = build_calibration(self.images, self.scale, size_hw, self.config.calib_samples,
                                                     self.config.seed, self.source, self.degradation)
        return self._cache[size_hw]


def _calib_provider(calib, source, config: ExportConfig) -> _CalibProvider:
    from .calibration import CalibrationSet, degradation_for, load_images

    if isinstance(calib, CalibrationSet):
        return _CalibProvider(None, source.scale, config, calib.source, fixed=calib)
    dirs = ["builtin"] if calib is None else [str(d) for d in calib]
    return _CalibProvider(load_images(dirs, "calibration"), source.scale, config, ",".join(dirs),
                          degradation=degradation_for(source))


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


def _stage(model, source, exporter: Exporter, config: ExportConfig, calib: Optional[_CalibProvider],
           stage_dir: Path, name: str, stage: Optional[Callable[[str], None]] = None) -> Staged:
    from . import int8_forms
    from .manifest import build_manifest, embedded_essentials
    from .rewrite import rewrite_upsampler

    stage = stage or (lambda _msg: None)

    denoiser = source.task == "denoise"
    form = config.upsampler_for(exporter)
    options = config.options_for(exporter)
    shape = config.input_shape_for(exporter)
    if denoiser:
        shape = denoiser_input_shape(shape, source)
    calib_set = None
    if exporter.needs_calibration:
        if calib is None:
            raise UserError(f"format '{exporter.key}' needs calibration images: pass --calib DIR")
        stage("calibration pictures")
        calib_set = calib.get(tuple(shape[1:3]) if shape[1] is not None else tuple(config.calib_size_hw))
    work = stage_dir / f"work-{exporter.key}"
    work.mkdir(parents=True, exist_ok=True)
    path = stage_dir / name
    meta = embedded_essentials(exporter.key, source.scale, form, source)
    # The int8 forms only pay off with int8 weights; float graphs stay as trained (one upsampler).
    int8 = exporter.int8_weights and config.split_concat and not denoiser
    if denoiser:
        # The decoder's Conv2DTranspose layers in the form asked for (no upscaling layer, no int8 forms).
        from .rewrite_decoder import rewrite_deconvs

        primary = int8_forms.Rewritten(rewrite_deconvs(model) if form == "subpixel" else model, None,
                                       int8_forms.Pins())
    elif int8:
        primary = int8_forms.SPLIT.rewrite(model, form, calib_set)
    else:
        primary = int8_forms.Rewritten(rewrite_upsampler(model, form, split_concat=False), None, int8_forms.Pins())
    job = ExportJob(model=primary.model, input_shape=shape, dest=path, work_dir=work, calib=calib_set,
                    options=options, metadata=meta, pins=primary.pins)
    stage("conversion" + (" (calibrating)" if calib_set is not None else ""))
    result = exporter.export(job)
    rewrites = list(primary.form.rewrites) if int8 else []
    if int8 and exporter.runtime == "tflite" and exporter.full_integer and calib_set is not None:
        # Every form is built and the one closer to the float model on the calibration pictures is kept.
        refs = None
        candidates = []
        for f in int8_forms.FORMS:
            built = primary if f is primary.form else f.rewrite(model, form, calib_set)
            dest = path if built is primary else work / f"{f.key}-{name}"
            if built is primary:
                res = result
            else:
                stage(f"conversion of the {f.key.replace('_', '-')} int8 form (calibrating)")
                res = exporter.export(dataclasses.replace(job, model=built.model, dest=dest, pins=built.pins))
            if refs is None:
                refs = [np.clip(np.asarray(model(x), np.float64), 0.0, 1.0) for x in calib_set]
            candidates.append(int8_forms.measure(f, dest, res, calib_set, refs))
        chosen, note = int8_forms.choose(candidates)
        if chosen.path != path:
            os.replace(chosen.path, path)
        result, rewrites = chosen.result, list(chosen.form.rewrites)
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
    from deconv_edge_train.evaluate import load_keras_model

    if isinstance(keras_model, (str, Path)):
        path = Path(keras_model)
        return load_keras_model(path), path
    return keras_model, None


def export_one(keras_model, key: str, out_dir: str | Path, config: ExportConfig = DEFAULT_CONFIG,
               calib=None) -> Path:
    """Export one format without the accuracy gate; see the module docstring. Returns the artifact path.

    Args:
        keras_model: a ``keras.Model`` built by ``deconv_edge_train.models`` (or a ``.keras`` path).
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
    provider = _calib_provider(calib, source, config) if exporter.needs_calibration else None
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


def convert(model_path: str | Path, formats: str | Sequence[str], calib_dirs: Sequence[str] | None,
            eval_dirs: Sequence[str], out_dir: str | Path, config: ExportConfig = DEFAULT_CONFIG,
            progress: Optional[Callable[[str], None]] = None,
            stage: Optional[Callable[[str], None]] = None) -> ConvertReport:
    """Convert ``model_path`` to every format in ``formats``, gate each one, write manifests and the report.

    ``progress`` gets one line per artifact (and the float model's quality first); ``stage`` gets what is
    happening now, ``[2/4] tflite-int8: gate on 5 pictures`` (the CLI shows it as a live line on a terminal).

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
    from .calibration import degradation_for

    eval_set = EvalSet.from_images(eval_images, source.scale, ",".join(map(str, eval_dirs)), degradation_for(source),
                                   source.size_multiple)
    provider = None
    if any(e.needs_calibration for e in exporters):
        if not calib_dirs:
            need = ", ".join(e.key for e in exporters if e.needs_calibration)
            verb = "needs" if "," not in need else "need"
            raise UserError(f"{need} {verb} calibration images: pass --calib DIR")
        provider = _calib_provider(list(calib_dirs), source, config)
    out = _out_dir(out_dir)

    s = source.scale
    float_psnr, float_ssim = eval_set.float_quality(model)
    what = f"denoise (AWGN sigma {degradation_for(source).sigma:g})" if source.task == "denoise" else f"x{s}"
    say(f"{path.name}: {what}, float Keras PSNR {float_psnr:.2f} dB on {len(eval_set.pictures)} eval picture(s)")

    rows = []
    stage_dir = Path(tempfile.mkdtemp(prefix=".convert-", dir=out))
    try:
        for i, exp in enumerate(exporters):
            now = None if stage is None else functools.partial(_stage_line, stage, f"[{i + 1}/{len(exporters)}] {exp.key}: ")
            rows.append(_convert_one(exp, model, source, config, provider, eval_set, stage_dir, out, path.stem,
                                     say, now))
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
    report = ConvertReport(model=str(path), model_sha256=source.sha256 or "", scale=s, out_dir=str(out),
                           eval_data=eval_set.source,
                           calib_data=",".join(map(str, calib_dirs)) if provider else None,
                           float_psnr_db=float_psnr, float_ssim=float_ssim, artifacts=tuple(rows))
    write_reports(report, out)
    return report


def _stage_line(stage: Callable[[str], None], prefix: str, msg: str) -> None:
    stage(prefix + msg)


def _convert_one(exp, model, source, config, provider, eval_set, stage_dir, out, stem, say,
                 stage=None) -> ArtifactReport:
    """Stage, gate and publish one format; any failure becomes an ``error`` row (the others still run)."""
    from .check import check_artifact
    from .manifest import with_accuracy

    try:
        staged = _stage(model, source, exp, config, provider, stage_dir, artifact_name(stem, exp), stage)
        if stage is not None:
            stage(f"gate on {len(eval_set.pictures)} picture(s)")
        acc = check_artifact(staged.path, model, eval_set, config.gate_for(exp), config.threads)
        manifest = with_accuracy(staged.manifest, acc.to_dict(), acc.passed)
        final, kept = _publish(staged, out, manifest)
    except Exception as exc:  # noqa: BLE001 - one format failing must not stop the others
        if os.environ.get("DECONV_EDGE_DEBUG"):
            traceback.print_exc(file=sys.stderr)
        msg = one_line(exc)
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
