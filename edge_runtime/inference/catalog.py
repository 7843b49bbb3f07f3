"""Shipped models by name: ``deconv-edge models``, ``--model x3``, ``Enhancer("fast")``.

Everything here is read from the manifests in ``edge_runtime/models/``; nothing lists models by hand except
:data:`ALIASES`, the one place short names are declared. A *model* is what the manifests' ``source_model``
says was trained (``fsrcnn`` at x3 → ``fsrcnn_x3``); its *files* are the shipped artifacts converted from it
(``fsrcnn_x3_int8.tflite``, ``fsrcnn_x3_fp32.onnx``, …). A name resolves, in this order:

1. an existing file path (``runs/x2/out/model_x2_int8.tflite``): used as given;
2. an alias (``x3``, ``fast``, ``default``) → its model;
3. a model name (``fsrcnn_x3``) → the file to run on this device (:func:`choose_file`: the fastest measured
   here by ``deconv-edge bench --pick``, else the preference order of :data:`FORMAT_PREFERENCE`);
4. a shipped file name (``fsrcnn_x3_int8.tflite``) or its stem (``fsrcnn_x3_int8``; TFLite before ONNX when
   both exist).

A new shipped family (say ``newnet_x2_int8.tflite`` from a model named ``newnet``) is listed and resolvable by its
model and file names as soon as its files are in ``edge_runtime/models/``; giving it a short name is one
:func:`alias` line below (``sesr`` took ``default``, ``x2``, ``x3`` and ``x4`` that way from ``fsrcnn``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from deconv_edge_core.errors import UserError
from deconv_edge_core.manifest import Manifest, load_manifest
from deconv_edge_core.registry import Registry

from .default_model import FORMAT_PREFERENCE, MODELS_DIR

ARTIFACT_SUFFIXES = (".tflite", ".onnx", ".json")


@dataclass(frozen=True)
class Alias:
    """A short name for a shipped model: the model trained as ``family`` at ``scale``.

    Attributes:
        name: what users type (``x3``).
        family: the model registry name in the manifests' ``source_model.config.name`` (``fsrcnn``).
        scale: upscaling factor.
        summary: one line for ``deconv-edge models``.
    """

    name: str
    family: str
    scale: int
    summary: str

    @property
    def model(self) -> str:
        return model_name(self.family, self.scale)


#: Short model names, filled by :func:`alias`.
ALIASES: Registry = Registry("model alias")


def alias(name: str, family: str, scale: int, summary: str) -> Alias:
    """Declare a short name (see the module docstring); returns it."""
    return ALIASES.register(name)(Alias(name, family, scale, summary))


# ---- the one place short names are declared ------------------------------------------------------------------
alias("default", "sesr", 2, "what runs without --model")
alias("x2", "sesr", 2, "SESR-like (16 ch, 5 blocks), 2x")
alias("x3", "sesr", 3, "SESR-like (16 ch, 5 blocks), 3x")
alias("x4", "sesr", 4, "SESR-like (16 ch, 5 blocks), 4x")
alias("fast", "fsrcnn-s", 2, "FSRCNN-s (32,5,1), 2x: a third of the x2 model's MACs")
alias("denoise", "rednet", 1, "RED-Net-style denoiser, one model for every noise level (--strength)")


def model_name(family: str, scale: int) -> str:
    """``("fsrcnn", 3)`` → ``fsrcnn_x3``: the name shipped files start with."""
    return f"{family}_x{int(scale)}"


@dataclass(frozen=True)
class ShippedFile:
    """One shipped artifact and its manifest."""

    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def sha256(self) -> str:
        return str(self.manifest.artifact.get("sha256", ""))

    def runnable(self) -> Optional[str]:
        """``None`` when this device can run the file as intended, else why not (one line)."""
        from .backends import BACKENDS, default_backend_for, edgetpu, litert, onnxruntime  # noqa: F401 (registry)

        if self.manifest.status == "failed":
            return "its accuracy gate failed"
        return BACKENDS.get(default_backend_for(self.manifest)).available()


@dataclass(frozen=True)
class ShippedModel:
    """A trained model and the files shipped for it (in :data:`FORMAT_PREFERENCE` order)."""

    name: str
    family: str
    scale: int
    files: tuple
    aliases: tuple = ()

    def file(self, name: str) -> Optional[ShippedFile]:
        return next((f for f in self.files if f.name == name), None)


def _family_of(manifest: Manifest, artifact: Path) -> str:
    config = (manifest.source_model or {}).get("config") or {}
    if config.get("name"):
        return str(config["name"])
    stem = Path(str((manifest.source_model or {}).get("file") or artifact.name)).name.split(".")[0]
    suffix = f"_x{manifest.scale}"
    return stem.split(suffix)[0] if suffix in stem else stem


def _rank(f: ShippedFile) -> tuple:
    fmt = f.manifest.format
    return (FORMAT_PREFERENCE.index(fmt) if fmt in FORMAT_PREFERENCE else len(FORMAT_PREFERENCE), f.name)


def shipped_models(models_dir: Optional[Path] = None) -> dict:
    """Model name → :class:`ShippedModel` for every valid manifest in ``models_dir`` (default: the shipped ones).

    Manifests that do not load are left out (``deconv-edge verify`` says why).
    """
    folder = Path(models_dir) if models_dir is not None else MODELS_DIR
    grouped: dict = {}
    for mpath in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            manifest, artifact = load_manifest(mpath)
        except UserError:
            continue
        family = _family_of(manifest, artifact)
        grouped.setdefault((family, manifest.scale), []).append(ShippedFile(artifact, manifest))
    out = {}
    for (family, scale), files in sorted(grouped.items()):
        name = model_name(family, scale)
        names = tuple(a for a in ALIASES if ALIASES.get(a).model == name)
        out[name] = ShippedModel(name, family, scale, tuple(sorted(files, key=_rank)), names)
    return out


@dataclass(frozen=True)
class Choice:
    """What a name resolved to: the file, its model (``None`` for a plain path) and how it was chosen."""

    path: Path
    model: Optional[str] = None
    how: str = "given as a path"


def choose_file(model: ShippedModel) -> tuple:
    """The file of ``model`` to run here, and how it was chosen: ``(ShippedFile, how)``.

    The fastest file measured on this device (``deconv-edge bench --pick``, cached per device fingerprint)
    when that measurement is still valid; otherwise the first runnable file in :data:`FORMAT_PREFERENCE`
    order, with the Edge TPU file first when the Edge TPU delegate loads here.

    Raises:
        UserError: no file of the model can run here (with the install hint of the missing runtime).
    """
    runnable = [f for f in model.files if f.runnable() is None]
    if not runnable:
        reasons = sorted({f.runnable() for f in model.files})
        raise UserError(f"no file of model '{model.name}' can run here: {'; '.join(reasons)}")
    from .picks import lookup

    measured = lookup(model.name)
    if measured:
        hit = next((f for f in runnable if f.name == measured.get("file") and f.sha256 == measured.get("sha256")), None)
        if hit is not None:
            return hit, (f"fastest measured here ({measured.get('frame_p50_ms', 0):.1f} ms per "
                         f"{'x'.join(map(str, measured.get('input_hw', ())))} frame, bench --pick "
                         f"{measured.get('measured', '')})")
    tpu = [f for f in runnable if f.manifest.format == "edgetpu"]
    if tpu:
        return tpu[0], "the Edge TPU file (the delegate loads here; 'deconv-edge bench --pick' measures)"
    cpu = [f for f in runnable if f.manifest.format != "edgetpu"] or runnable
    return cpu[0], "format preference, not measured here ('deconv-edge bench --pick' measures)"


def valid_names(models: dict) -> list:
    """Aliases, then model names, then file names: what ``--model`` accepts besides a path."""
    aliases = [a for a in ALIASES if ALIASES.get(a).model in models]
    return aliases + list(models) + [f.name for m in models.values() for f in m.files]


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith(ARTIFACT_SUFFIXES)


def resolve(name: Optional[str | os.PathLike], models_dir: Optional[Path] = None) -> Choice:
    """Resolve ``name`` (see the module docstring); ``None`` or empty = the ``default`` alias.

    Raises:
        UserError: a path that does not exist, or a name that is none of the shipped ones (listing them).
    """
    text = "" if name is None else str(name).strip()
    if text and Path(text).expanduser().exists():
        return Choice(Path(text).expanduser())
    models = shipped_models(models_dir)
    target = text or "default"
    if target in ALIASES and ALIASES.get(target).model in models:
        target = ALIASES.get(target).model
    if target in models:
        chosen, how = choose_file(models[target])
        return Choice(chosen.path, target, how)
    files = [f for m in models.values() for f in m.files]
    for match in ([f for f in files if f.name == target], sorted((f for f in files if f.stem == target), key=_rank)):
        runnable = [f for f in match if f.runnable() is None] or match
        if runnable:
            model = next(m.name for m in models.values() if runnable[0] in m.files)
            return Choice(runnable[0].path, model, "named file")
    if not text:
        from .default_model import default_model

        return Choice(default_model(models_dir), None, "the default model")
    names = [a for a in ALIASES if ALIASES.get(a).model in models] + list(models)
    example = next((f.name for m in models.values() for f in m.files), None)
    listing = (", ".join(names) + (f", or a shipped file name such as {example}" if example else "")) or "none shipped"
    if _looks_like_path(text):
        raise UserError(f"model '{text}' does not exist (not a file; shipped names: {listing}; "
                        "'deconv-edge models' lists them)")
    raise UserError(f"unknown model '{text}'; valid: {listing} (or an artifact path; 'deconv-edge models' lists all)")


# ---- the listing --------------------------------------------------------------------------------------------------
def _eval_name(accuracy: dict) -> str:
    data = str(accuracy.get("eval_data") or "")
    return Path(data.split(",")[0]).name if data else ""


def model_rows(models: dict) -> list:
    """One dict per shipped file, for ``deconv-edge models`` (``--json``) and its table."""
    from .picks import lookup

    rows = []
    for m in models.values():
        try:
            chosen, _ = choose_file(m)
        except UserError:
            chosen = None
        measured = lookup(m.name) or {}
        for f in m.files:
            acc = f.manifest.accuracy or {}
            ref = f.manifest.extra.get("reference_latency") or {}
            here = (measured.get("all_p50_ms") or {}).get(f.name)
            rows.append({
                "model": m.name, "aliases": list(m.aliases), "file": f.name, "scale": f.manifest.scale,
                "task": f.manifest.task, "format": f.manifest.format, "size_bytes": f.path.stat().st_size,
                "psnr_db": acc.get("psnr_db"), "eval": _eval_name(acc), "status": f.manifest.status,
                "reference_latency_ms": ref.get("frame_p50_ms"), "reference_latency": ref or None,
                "latency_here_ms": here, "runnable": f.runnable() is None,
                "chosen": chosen is not None and chosen.name == f.name, "path": str(f.path)})
    return rows


def models_table(rows: list) -> str:
    """The rows as an aligned text table; ``*`` marks the file each model name runs here."""
    head = ("model", "aliases", "file", "scale", "task", "format", "KiB", "PSNR dB", "ref ms", "here ms")
    cells = [head]
    for r in rows:
        psnr = f"{r['psnr_db']:.2f} {r['eval']}".strip() if r["psnr_db"] is not None else "-"
        cells.append((r["model"], ",".join(r["aliases"]) or "-", ("* " if r["chosen"] else "  ") + r["file"],
                      f"x{r['scale']}", r["task"], r["format"], f"{r['size_bytes'] / 1024:.1f}", psnr,
                      "-" if r["reference_latency_ms"] is None else f"{r['reference_latency_ms']:.1f}",
                      "-" if r["latency_here_ms"] is None else f"{r['latency_here_ms']:.1f}"))
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def reference_note(rows: list) -> Optional[str]:
    """Where the ``ref ms`` column comes from (the manifests' ``reference_latency``), or ``None``."""
    refs = [r["reference_latency"] for r in rows if r["reference_latency"]]
    if not refs:
        return None
    ref = refs[0]
    hw = "x".join(str(v) for v in ref.get("input_hw", ()))
    load = ref.get("load_avg_1m")
    load = f", load average {load:.1f}" if isinstance(load, (int, float)) else ""
    return (f"ref ms: whole frame path p50, {hw} (HxW) low-resolution frame, {ref.get('threads')} thread(s), on "
            f"{ref.get('device', '?')}{load} ({ref.get('measured', '?')}, '{ref.get('command', '?')}'); "
            "here ms: 'deconv-edge bench --pick' on this device")


def dump_json(rows: list) -> str:
    return json.dumps(rows, indent=2)
