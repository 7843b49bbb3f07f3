"""The layout holds: the device package never loads the workstation's, and the kernel loads nothing of ours.

Each check imports in a fresh interpreter, so nothing an earlier test imported can hide or fake a dependency.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, cli_env

#: Import name -> repo folder of every installed package (pyproject.toml's [tool.setuptools.package-dir]).
PACKAGES = {"deconv_edge_core": "core", "deconv_edge_train": "train", "deconv_edge_convert": "convert",
            "edge_runtime": "edge_runtime"}
#: Names a module of ours was (or could be) imported under; the bare ones are the repo folders' own names.
OURS = (*PACKAGES, "train", "convert", "core", "benchmarks")
WORKSTATION = ("deconv_edge_train", "deconv_edge_convert", "train", "convert")

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
pkg = importlib.import_module(sys.argv[1])
names, failed = [pkg.__name__], {}
for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # runs the CLI
    try:
        importlib.import_module(info.name)
        names.append(info.name)
    except ImportError as exc:
        failed[info.name] = repr(exc)
print(json.dumps({"imported": names, "failed": failed, "modules": sorted(sys.modules)}))
"""


def _import_all(package: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _IMPORT_ALL, package], capture_output=True, text=True, cwd=REPO,
                       env=cli_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _top(name: str) -> str:
    return name.split(".")[0]


def test_edge_runtime_never_imports_train_or_convert():
    got = _import_all("edge_runtime")
    assert got["failed"] == {}
    assert len(got["imported"]) > 30  # every module, not just the package
    loaded = sorted(m for m in got["modules"] if _top(m) in WORKSTATION)
    assert loaded == [], f"importing edge_runtime loaded {loaded}"


def test_edge_runtime_module_list_covers_the_subpackages():
    got = _import_all("edge_runtime")
    for sub in ("inference", "inference.backends", "video", "video.sources", "video.sinks", "bench", "ship",
                "agent"):
        assert f"edge_runtime.{sub}" in got["imported"]


def test_kernel_loads_nothing_else_of_ours():
    got = _import_all("deconv_edge_core")
    assert got["failed"] == {}
    others = sorted(m for m in got["modules"] if _top(m) in OURS and _top(m) != "deconv_edge_core")
    assert others == [], f"importing deconv_edge_core loaded {others}"


def _imported_names(path: Path) -> list:
    """Absolute module names imported anywhere in ``path`` (relative imports are inside the package)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append(node.module)
    return out


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names needs Python 3.10")
def test_kernel_source_imports_only_the_standard_library():
    bad = {}
    for path in sorted((REPO / "core").rglob("*.py")):
        names = [n for n in _imported_names(path) if _top(n) != "deconv_edge_core"
                 and _top(n) not in sys.stdlib_module_names]
        if names:
            bad[str(path.relative_to(REPO))] = names
    assert bad == {}


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names needs Python 3.10")
def test_bench_protocol_imports_only_the_standard_library_and_the_kernel():
    """The peer's worker loads these in a venv with nothing of ours installed (benchmarks/peer_worker.py);
    numpy and OpenCV are imported inside functions, when a runner needs them."""
    bad = {}
    for name in ("config", "protocol"):
        tree = ast.parse((REPO / "edge_runtime" / "bench" / f"{name}.py").read_text())
        found = []
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import):
                found += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append(("." * node.level) + (node.module or ""))
        allowed = [n for n in found if n == ".config" or _top(n) == "deconv_edge_core"
                   or (not n.startswith(".") and _top(n) in sys.stdlib_module_names)]
        if set(found) - set(allowed):
            bad[name] = sorted(set(found) - set(allowed))
    assert bad == {}


def test_no_module_imports_the_bare_folder_names():
    """Code imports the installed names (``deconv_edge_train``), never the repo folders (``train``)."""
    bad = {}
    for folder in (*PACKAGES.values(), "benchmarks", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            names = [n for n in _imported_names(path) if _top(n) in ("train", "convert", "core")]
            if names:
                bad[str(path.relative_to(REPO))] = names
    assert bad == {}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib needs Python 3.11")
def test_pyproject_lists_every_package_folder():
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {k: v for k, v in config["package-dir"].items()} == {k: v for k, v in PACKAGES.items() if k != v}
    on_disk = set()
    for name, folder in PACKAGES.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            on_disk.add(".".join((name, *rel.parts)))
    assert set(config["packages"]) == on_disk


def test_the_command_line_loads_without_numpy():
    """`deconv-edge verify` runs in a device venv before its wheels are in (deploy --setup): building the
    command line must not import numpy or OpenCV (a `choices=` list once did)."""
    import subprocess
    import sys

    code = ("import sys, edge_runtime.cli, edge_runtime.runtime_cli; "
            "print(sorted(m for m in ('numpy', 'cv2') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
