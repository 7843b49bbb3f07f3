"""Paths, artifact discovery and the peer's environment, shared by the benchmark scripts."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
SHARED = Path(os.environ.get("DECONV_EDGE_SHARED") or REPO.parent / "shared")
PEER_DIR = SHARED / "peers" / "opencv-dnn-superres"
EVAL_SETS = {"set5": SHARED / "data" / "sr" / "eval" / "set5", "set14": SHARED / "data" / "sr" / "eval" / "set14"}
PROTOCOL = SHARED / "PROTOCOL.md"
#: Where ``python -m benchmarks.artifacts`` puts the artifacts it makes (ignored by git: ``out/``).
ARTIFACTS_DIR = REPO / "out" / "benchmarks" / "artifacts"
SHIPPED_DIR = REPO / "edge_runtime" / "models"
#: The peer's own environment: its graphs need OpenCV 4.x contrib (5.0 rejects their DepthToSpace node).
PEER_VENV = REPO / ".venv-peer"
PEER_REQUIREMENTS = ("opencv-contrib-python-headless<5", "numpy")
PEER_WORKER = REPO / "benchmarks" / "peer_worker.py"
#: (name, file stem, dnn_superres algorithm) of the peer's models.
PEER_MODELS = (("FSRCNN", "FSRCNN", "fsrcnn"), ("FSRCNN-small", "FSRCNN-small", "fsrcnn"), ("ESPCN", "ESPCN", "espcn"))
FORMAT_ORDER = ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "edgetpu", "onnx-fp32", "onnx-fp16",
                "onnx-int8")


def command_line() -> str:
    """How this script was invoked, for the results (``BENCH_COMMAND`` from run_all.sh wins)."""
    prog = sys.argv[0]
    if prog.endswith(".py"):
        rel = Path(prog).resolve().relative_to(REPO) if Path(prog).resolve().is_relative_to(REPO) else Path(prog)
        prog = f"python -m {'.'.join(rel.with_suffix('').parts)}"
    return " ".join([prog, *map(shlex.quote, sys.argv[1:])])


def run_id() -> str:
    """The run a result belongs to: ``BENCH_RUN_ID`` (``run_all.sh`` sets one for all its steps), else a new
    one. Tables are only combined from results of one run (:mod:`benchmarks.report` checks it)."""
    from datetime import datetime, timezone

    return os.environ.get("BENCH_RUN_ID") or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"


def rel(path) -> str:
    """``path`` relative to the checkout when inside it (results stay the same from any clone)."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- our artifacts ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Artifact:
    """One of our artifacts, as the tables name it."""

    path: Path
    format: str
    upsampler: str
    scale: int
    status: str
    size_bytes: int
    #: the source model's file stem; named in labels only when several models are compared (``find_artifacts``)
    model: str = ""
    show_model: bool = False

    @property
    def label(self) -> str:
        """``tflite-int8 subpixel`` (plus ``[gate failed]`` when its accuracy gate failed)."""
        tail = " [gate failed]" if self.status == "failed" else ""
        head = f"{self.model} " if self.show_model else ""
        return f"{head}{self.format} {self.upsampler}{tail}"

    @property
    def key(self) -> str:
        """Stable id joining quality and speed rows."""
        model = f"{self.model}:" if self.show_model else ""
        return f"ours:{model}{self.format}:{self.upsampler}:x{self.scale}"

    def sort_key(self):
        fmt = FORMAT_ORDER.index(self.format) if self.format in FORMAT_ORDER else len(FORMAT_ORDER)
        return (self.scale, self.upsampler != "deconv", fmt, str(self.path))


def default_artifact_paths() -> list:
    """``out/benchmarks/artifacts`` when ``benchmarks.artifacts`` made some, else the shipped models."""
    return [ARTIFACTS_DIR] if ARTIFACTS_DIR.is_dir() and any(ARTIFACTS_DIR.rglob("*.json")) else [SHIPPED_DIR]


def find_artifacts(paths: Sequence[str | Path], scale: Optional[int] = None) -> list:
    """Artifacts under ``paths`` (files or folders searched recursively), one per (model, format, form, scale).

    Rejected files (``*.rejected.*``) and folders' ``report.json`` are skipped; the first of duplicates wins.
    """
    from deconv_edge_core.errors import UserError
    from deconv_edge_core.manifest import load_manifest

    found: dict = {}
    for given in paths:
        p = Path(given)
        candidates = sorted(p.rglob("*.json")) if p.is_dir() else [p]
        for c in candidates:
            hidden = any(part.startswith(".") for part in (c.relative_to(p).parts if p.is_dir() else (c.name,)))
            if ".rejected." in c.name or c.name == "report.json" or hidden:
                continue  # rejected by the gate, convert's report, or a staging folder
            try:
                manifest, artifact = load_manifest(c)
            except UserError as exc:
                if not p.is_dir():
                    raise
                say(f"skipping {c}: {exc}")
                continue
            if scale is not None and manifest.scale != scale:
                continue
            model = Path(str(manifest.source_model.get("file") or "")).stem
            a = Artifact(artifact, manifest.format, manifest.upsampler, manifest.scale, manifest.status,
                         artifact.stat().st_size, model=model)
            # Deduplicate per source model: two models in the same format must stay two rows.
            found.setdefault((model, a.key), a)
    arts = list(found.values())
    if len({a.model for a in arts}) > 1:
        arts = [dataclasses.replace(a, show_model=True) for a in arts]
    return sorted(arts, key=Artifact.sort_key)


# ---- the peer ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeerEnv:
    """The peer's interpreter, or why there is none."""

    python: Optional[Path]
    opencv: Optional[str]
    problem: Optional[str]

    @property
    def ok(self) -> bool:
        return self.problem is None


def _probe(python: Path) -> tuple:
    """(OpenCV version, problem) of an interpreter that should have OpenCV 4.x contrib."""
    code = "import cv2, numpy; print(cv2.__version__, hasattr(cv2, 'dnn_superres'))"
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{python} does not run ({exc})"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"{python} cannot import cv2/numpy ({last})"
    version, has_sr = out.stdout.split()
    if has_sr != "True":
        return version, f"OpenCV {version} in {python} has no dnn_superres (install opencv-contrib-python-headless<5)"
    if not version.startswith("4."):
        return version, f"OpenCV {version} in {python} cannot read the peer graphs (needs 4.x)"
    return version, None


def peer_env(create: bool = True) -> PeerEnv:
    """Reuse ``.venv-peer``, or make it (``python -m venv`` + pip from PyPI) when ``create``.

    Nothing is downloaded when the venv already works. Every failure is reported as one clear line.
    """
    if not PEER_DIR.is_dir():
        return PeerEnv(None, None, f"the peer's graphs are not at {PEER_DIR} (../shared is absent)")
    python = PEER_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if python.exists():
        version, problem = _probe(python)
        if problem is None:
            return PeerEnv(python, version, None)
        if not create:
            return PeerEnv(None, version, problem)
        say(f"peer: {problem}; reinstalling {', '.join(PEER_REQUIREMENTS)}")
    elif not create:
        return PeerEnv(None, None, f"{PEER_VENV} does not exist (make it: python -m benchmarks.peer setup)")
    try:
        if not python.exists():
            say(f"peer: creating {PEER_VENV} with {', '.join(PEER_REQUIREMENTS)} (from PyPI, once)")
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, capture_output=True, timeout=600)
        pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              *PEER_REQUIREMENTS], capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as exc:
        return PeerEnv(None, None, f"could not create {PEER_VENV}: {exc}")
    if pip.returncode != 0:
        errors = [ln for ln in pip.stderr.splitlines() if ln.startswith("ERROR")] or pip.stderr.splitlines()[-1:]
        return PeerEnv(None, None, f"pip could not install {' '.join(PEER_REQUIREMENTS)} into {PEER_VENV}: "
                                   f"{(errors or ['?'])[0][:200]}")
    version, problem = _probe(python)
    return PeerEnv(python if problem is None else None, version, problem)


def peer_models(scale: int) -> list:
    """(name, path, algo) of the peer's graphs for ``scale`` that exist."""
    out = []
    for name, stem, algo in PEER_MODELS:
        path = PEER_DIR / f"{stem}_x{scale}.pb"
        if path.is_file():
            out.append((name, path, algo))
    return out


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
