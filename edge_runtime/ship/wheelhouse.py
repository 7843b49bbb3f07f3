"""A wheel of the running deconv-edge, for ``make wheel`` and ``deploy --setup``.

From a source checkout the wheel is built (:func:`build_wheel`). From an installed,
non-editable package (``pip install dist/deconv_edge-*.whl`` on a laptop, no checkout), the installed files
are packed back into the wheel they came from (:func:`repack_installed`): the same files, listed by the
distribution's own ``RECORD``, with a fresh ``RECORD``. Nothing is downloaded either way.

``python -m edge_runtime.ship.wheelhouse DIR`` writes the wheel into ``DIR`` (what ``make wheel`` runs).

The other wheels a device needs (numpy, OpenCV, the runtime), downloaded for its platform into an offline
bundle, are :mod:`edge_runtime.ship.platform_wheels`' job; this wheel is the first of them.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

from deconv_edge_core.errors import UserError

from .ssh import last_line

DIST_NAME = "deconv-edge"
#: Files of an installed ``.dist-info`` that describe the installation, not the package.
_INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


#: What a wheel of this package is built from (the packages pyproject.toml includes, and its metadata files).
_SOURCE_ITEMS = ("pyproject.toml", "README.md", "LICENSE", "core", "train", "convert", "edge_runtime")


def build_wheel(out_dir: Path) -> Path:
    """Build ``deconv_edge-*.whl`` from the source checkout this module lives in, into ``out_dir``.

    A copy of the sources is built (never the checkout itself, which would gain ``build/`` and ``*.egg-info``);
    with the local setuptools first (offline), else in pip's isolated build environment.

    Raises:
        UserError: no source checkout here (installed from a wheel: pass ``--wheel``), or the build failed.
    """
    root = Path(__file__).resolve().parents[2]  # edge_runtime/ship/ -> the checkout
    if not (root / "pyproject.toml").is_file():
        raise UserError(f"--setup builds a wheel from the source checkout, and {root} is not one; pass --wheel FILE")
    src = out_dir / "src"
    src.mkdir(parents=True)
    for name in _SOURCE_ITEMS:
        item = root / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        elif item.is_file():
            shutil.copy2(item, src / name)
    dist = out_dir / "dist"
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(dist)]
    proc = subprocess.run([*base, "--no-build-isolation", str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        proc = subprocess.run([*base, str(src)], capture_output=True, text=True)
    wheels = sorted(dist.glob("deconv_edge-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise UserError(f"building the wheel for --setup failed: {last_line(proc.stderr) or proc.returncode}; "
                        "pass --wheel FILE")
    return wheels[-1]


def source_checkout() -> Optional[Path]:
    """The checkout this package runs from, or ``None`` (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "edge_runtime").is_dir() else None


def _installed_distribution():
    """The installed distribution whose files are the ones running now, or ``None``."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError:
        return None
    here = Path(__file__).resolve()
    for f in dist.files or ():
        if str(f).replace("\\", "/") == "edge_runtime/ship/wheelhouse.py":
            return dist if Path(dist.locate_file(f)).resolve() == here else None
    return None


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(out_dir: Path) -> Path:
    """Pack the installed deconv-edge back into ``out_dir/deconv_edge-VERSION-TAG.whl``.

    Raises:
        UserError: this code is not an installed (non-editable) distribution.
    """
    dist = _installed_distribution()
    if dist is None:
        raise UserError("this deconv-edge is neither a source checkout nor an installed wheel; pass --wheel FILE")
    info_dir = next((f.parts[0] for f in dist.files or () if f.parts[0].endswith(".dist-info")), None)
    packages = set((dist.read_text("top_level.txt") or "").split()) | {info_dir}
    # Only the packages and the metadata: console scripts (bin/) are made again by the installing pip.
    files = [f for f in dist.files or () if f.parts[0] in packages and "__pycache__" not in f.parts
             and not str(f).endswith(".pyc")]
    if info_dir is None:
        raise UserError(f"the installed {DIST_NAME} has no .dist-info in its RECORD; pass --wheel FILE")
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    name = f"deconv_edge-{dist.version}-{tags[0] if tags else 'py3-none-any'}.whl"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    records = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(files, key=str):
            arc = "/".join(f.parts)
            if f.parts[0] == info_dir and f.name in _INSTALL_ONLY:
                continue
            path = Path(dist.locate_file(f))
            if not path.is_file():
                raise UserError(f"installed file '{path}' is missing; reinstall {DIST_NAME} or pass --wheel FILE")
            data = path.read_bytes()
            zf.writestr(arc, data)
            records.append(f"{arc},{_record_hash(data)},{len(data)}")
        records.append(f"{info_dir}/RECORD,,")
        zf.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return target


def wheel_for_setup(out_dir: Path) -> tuple:
    """``(wheel path, how it was made)`` for ``deploy --setup``: built from the checkout, else repacked."""
    root = source_checkout()
    if root is not None:
        return build_wheel(out_dir), f"built from the checkout {root}"
    return repack_installed(out_dir), "repacked from the installed package"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    dest = Path(args[0] if args else "dist")
    try:
        with tempfile.TemporaryDirectory(prefix="dce-wheel-") as tmp:
            wheel, how = wheel_for_setup(Path(tmp) / "w")
            dest.mkdir(parents=True, exist_ok=True)
            final = dest / wheel.name
            shutil.copy2(wheel, final)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {final} ({final.stat().st_size / 1e6:.2f} MB, {how}); on a device: "
          f"pip install '{final.name}[edge]'")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
