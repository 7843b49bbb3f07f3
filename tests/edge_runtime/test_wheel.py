"""``make wheel``'s wheel installs and runs with no checkout, and an installed (non-editable) package makes the
wheel ``deploy --setup`` ships by packing itself back up (real pip installs, offline, no checkout on the path)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO


def _offline_build_reason():
    """Why this environment cannot build the wheel without downloading a build backend, or ``None``."""
    if importlib.util.find_spec("setuptools") is None:
        return "building the wheel offline needs setuptools in this environment"
    from importlib import metadata

    major_minor = tuple(int(p) for p in metadata.version("setuptools").split(".")[:2])
    if major_minor < (70, 1) and importlib.util.find_spec("wheel") is None:
        return "setuptools < 70.1 needs the 'wheel' package to build wheels offline"
    return None


pytestmark = pytest.mark.skipif(_offline_build_reason() is not None, reason=str(_offline_build_reason()))


def _env(path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(path), PYTHONNOUSERSITE="1")
    return env


def _run(args, cwd, env, timeout=180) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _install(wheel: Path, target: Path) -> None:
    _run(["-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--disable-pip-version-check", "--target",
          str(target), str(wheel)], cwd=target.parent, env=_env(target.parent))


def _names(wheel: Path) -> set:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_installs_without_checkout_and_repacks_itself(tmp_path):
    built = _run(["-m", "edge_runtime.ship.wheelhouse", str(tmp_path / "dist")], cwd=REPO, env=dict(os.environ))
    (wheel,) = (tmp_path / "dist").glob("deconv_edge-*.whl")
    assert "built from the checkout" in built.stdout
    names = _names(wheel)
    assert "edge_runtime/models/fsrcnn_x2_int8.tflite" in names and "edge_runtime/video/sinks/preview.html" in names

    site = tmp_path / "site"
    _install(wheel, site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(["-c", "import edge_runtime; print(edge_runtime.__file__)"], cwd=elsewhere, env=_env(site))
    assert where.stdout.strip().startswith(str(site)), where.stdout
    listed = _run(["-m", "edge_runtime", "models"], cwd=elsewhere, env=_env(site))
    assert "fsrcnn_x3_int8.tflite" in listed.stdout
    snippet = ("import numpy as np\nfrom edge_runtime import Enhancer\n"
               "print(Enhancer('x2')(np.zeros((16, 16, 3), np.uint8)).shape)")
    assert _run(["-c", snippet], cwd=elsewhere, env=_env(site)).stdout.strip() == "(32, 32, 3)"

    # No checkout here: the installed package packs itself back into a wheel with the same files.
    repacked = _run(["-m", "edge_runtime.ship.wheelhouse", str(tmp_path / "again")], cwd=elsewhere, env=_env(site))
    assert "repacked from the installed package" in repacked.stdout
    (wheel2,) = (tmp_path / "again").glob("deconv_edge-*.whl")
    assert wheel2.name == wheel.name
    assert _names(wheel2) == names
    site2 = tmp_path / "site2"
    _install(wheel2, site2)
    assert "fsrcnn-s_x2_int8.tflite" in _run(["-m", "edge_runtime", "models"], cwd=elsewhere, env=_env(site2)).stdout
    from deconv_edge_core.fsutil import sha256_file

    model = "edge_runtime/models/fsrcnn_x2_int8.tflite"
    assert sha256_file(site2 / model) == sha256_file(REPO / model)
