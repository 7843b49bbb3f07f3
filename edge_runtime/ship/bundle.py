"""Bundles: the artifacts for a device in one ``.tar.gz``, with everything needed to prove they arrived intact.

A bundle unpacks (flat) into::

    models/NAME            each artifact ...
    models/NAME.json       ... and its manifest
    bundle.json            what is inside, made by which deconv-edge version
    requirements.txt       the runtime's pip requirements for these artifacts
    README.md              for whoever opens it on the device
    SHA256SUMS             ``sha256sum -c SHA256SUMS`` checks every file above

:func:`verify` checks a bundle file without unpacking it, an unpacked bundle folder, or a single artifact. The
unpack safety rules and the folder check are shared with the device side (:mod:`edge_runtime.agent.device_agent`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import atomic_path, sha256_file
from deconv_edge_core.manifest import Manifest, load_manifest, manifest_path_for, verify_artifact
from edge_runtime.agent import device_agent

from .verify import BUNDLE_SUFFIXES, VerifyReport, is_bundle_name, verify  # noqa: F401 (bundle.verify: the public name)

BUNDLE_SCHEMA_VERSION = 1
#: The pip extra that installs the inference runtime an artifact needs (see pyproject.toml).
RUNTIME_EXTRAS = {"tflite": "edge", "onnx": "onnx"}


@dataclass(frozen=True)
class BundleEntry:
    """One artifact going into a bundle."""

    artifact: Path
    manifest_path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.artifact.name


# ---- making a bundle --------------------------------------------------------------------------------------------
def collect_entries(paths: Sequence[str | Path]) -> list[BundleEntry]:
    """Artifacts named on the command line (a folder stands for every artifact with a manifest in it).

    Raises:
        UserError: a missing artifact or manifest, a tampered artifact, two artifacts with one name.
    """
    entries: list[BundleEntry] = []
    for given in paths:
        given = Path(given)
        if given.is_dir():
            found = sorted(p for p in given.glob("*.json") if p.with_suffix("").is_file())
            if not found:
                raise UserError(f"folder '{given}' holds no artifact with a manifest beside it")
            candidates = [p.with_suffix("") for p in found]
        else:
            candidates = [given]
        for candidate in candidates:
            manifest, artifact = load_manifest(candidate)
            verify_artifact(manifest, artifact)  # Never ship a file that already disagrees with its manifest.
            entries.append(BundleEntry(artifact, manifest_path_for(artifact), manifest))
    if not entries:
        raise UserError("name at least one artifact to bundle")
    seen: dict[str, Path] = {}
    for e in entries:
        if e.name in seen and seen[e.name].resolve() != e.artifact.resolve():
            raise UserError(f"two artifacts are named '{e.name}' ({seen[e.name]} and {e.artifact}); rename one")
        seen[e.name] = e.artifact
    unique = {e.name: e for e in entries}
    return [unique[k] for k in sorted(unique)]


def runtime_extras(manifests: Iterable[Manifest | dict]) -> list[str]:
    """pip extras (``edge``, ``onnx``) covering the runtimes these artifacts need."""
    runtimes = {m.runtime if isinstance(m, Manifest) else m.get("runtime") for m in manifests}
    return sorted({RUNTIME_EXTRAS[r] for r in runtimes if r in RUNTIME_EXTRAS})


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("deconv-edge")
    except Exception:  # noqa: BLE001 - not installed (source checkout on sys.path): the source's own version
        from deconv_edge_core import __version__

        return __version__


def runtime_requirements(extras: Sequence[str]) -> list[str]:
    """The pip requirements of deconv-edge's base install plus ``extras``, from the installed metadata."""
    try:
        from importlib.metadata import requires

        declared = requires("deconv-edge") or []
    except Exception:  # noqa: BLE001 - metadata absent: name the package itself, pip resolves the rest
        return [f"deconv-edge[{','.join(extras)}]" if extras else "deconv-edge"]
    out: list[str] = []
    for line in declared:
        req, _, marker = line.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if (not marker.strip() or (extra and extra.group(1) in extras)) and req.strip() not in out:
            out.append(req.strip())
    return out


def _readme(entries: Sequence[BundleEntry], version: str, extras: Sequence[str]) -> str:
    rows = "\n".join(f"| `models/{e.name}` | {e.manifest.format} | {e.manifest.task_label} | "
                     f"{tuple(e.manifest.input.shape)} | {e.manifest.status} |" for e in entries)
    extra = f"[{','.join(extras)}]" if extras else ""
    first = f"models/{entries[0].name}"
    return f"""# deconv-edge bundle

Image-restoration models for `deconv-edge` {version}, made {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.

| file | format | task | input shape | accuracy gate |
| --- | --- | --- | --- | --- |
{rows}

Each model has its manifest beside it (`NAME.json`): the runtime reads scale, colour space, tensor shapes and
quantization from it and refuses a model whose sha256 differs from it.

## Check that it arrived intact

```sh
sha256sum -c SHA256SUMS        # no Python needed
deconv-edge verify .           # also checks every manifest
```

## Install the runtime

From the workstation, `deconv-edge deploy BUNDLE user@device --setup` copies, checks and installs everything.
By hand: a virtual environment, then the deconv-edge wheel with the `{extra or '(none)'}` extra (pip fetches
the packages in `requirements.txt`):

```sh
python3 -m venv ~/deconv-edge/venv
~/deconv-edge/venv/bin/pip install 'deconv_edge-{version}-py3-none-any.whl{extra}'
```

On Raspberry Pi OS with apt's `python3-opencv` and `python3-numpy`, `python3 -m venv --system-site-packages`
reuses them.

## Run

```sh
deconv-edge bench {first}
deconv-edge enhance picture.png -o out.png --model {first}
```
"""


def make_bundle(paths: Sequence[str | Path], out: str | Path, target=None, wheel: str | Path | None = None,
                extras: Sequence[str] | None = None, references: bool = True,
                log=None) -> tuple[Path, list[BundleEntry]]:
    """Write a bundle of the artifacts at ``paths`` to ``out`` (atomically: a failure leaves no file).

    Args:
        target: a :class:`~edge_runtime.ship.platform_wheels.Target`: add ``wheels/``, every wheel that device needs
            (this package's ``wheel``, built from the source checkout or repacked from the installed package when
            ``None``, and its runtime).
        extras: runtime extras instead of the ones the artifacts call for (e.g. ``onnx``, ``legacy``).
        references: add ``refs/`` (see :mod:`edge_runtime.inference.accuracy`) for each artifact that runs here.
        log: ``print``-like callable for progress and notes (``None``: quiet).

    Raises:
        UserError: bad output name, any problem :func:`collect_entries` finds, no wheels for ``target``.
    """
    out = Path(out)
    if not is_bundle_name(out):
        raise UserError(f"bundle name '{out}' must end with .tar.gz or .tgz")
    entries = collect_entries(paths)
    version = package_version()
    extras = sorted(extras) if extras is not None else runtime_extras(e.manifest for e in entries)
    created = int(time.time())
    members: list[tuple[str, bytes | Path]] = []
    for e in entries:
        members.append((f"{device_agent.MODELS_DIR}/{e.name}", e.artifact))
        members.append((f"{device_agent.MODELS_DIR}/{e.name}.json", e.manifest_path))
    refs_info = _add_references(entries, members, log) if references else {}
    with tempfile.TemporaryDirectory(prefix="dce-wheels-") as tmp:
        wheel_info = _add_wheels(target, wheel, extras, Path(tmp), members, log) if target is not None else None
        return _write_bundle(out, entries, members, version, extras, created, refs_info, wheel_info)


def _add_references(entries: Sequence[BundleEntry], members: list, log) -> dict:
    from ..inference.accuracy import REFS_DIR, make_references

    info = {}
    for e in entries:
        try:
            npz, meta = make_references(e.artifact, e.manifest)
        except (UserError, ValueError, RuntimeError) as exc:
            # Bundling fake or foreign artifacts still works; the device then has nothing to compare against.
            info[e.name] = f"no references: cannot run it here ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})"
            if log:
                log(f"  note: {e.name}: {info[e.name]}")
            continue
        members.append((f"{REFS_DIR}/{e.name}.npz", npz))
        members.append((f"{REFS_DIR}/{e.name}.json", (json.dumps(meta, indent=2) + "\n").encode()))
        info[e.name] = meta["reference"]
    return info


def _add_wheels(target, wheel, extras: Sequence[str], tmp: Path, members: list, log) -> dict:
    from . import platform_wheels

    if wheel is None:
        from .wheelhouse import wheel_for_setup

        wheel, how = wheel_for_setup(tmp / "build")
        if log:
            log(f"  deconv-edge wheel: {wheel.name} ({how})")
    wheel = Path(wheel)
    if not (wheel.is_file() and wheel.name.endswith(".whl")):
        raise UserError(f"--wheel '{wheel}' is not a .whl file")
    requirement = f"{wheel.resolve()}[{','.join(extras)}]" if extras else str(wheel.resolve())
    if log:
        log(f"  downloading wheels for {target.platform} / Python {target.python} (glibc {target.glibc})")
    files = platform_wheels.download(target, requirement, tmp / "wheels")
    if wheel.name not in {f.name for f in files}:
        shutil.copy2(wheel, tmp / "wheels" / wheel.name)
        files = sorted((tmp / "wheels").glob("*.whl"))
    for f in files:
        members.append((f"{platform_wheels.WHEELS_DIR}/{f.name}", f))
    return {"target": target.to_dict(), "requirement": f"deconv-edge[{','.join(extras)}]" if extras
            else "deconv-edge", "wheel": wheel.name, "files": [f.name for f in files],
            "size_bytes": sum(f.stat().st_size for f in files)}


def _write_bundle(out: Path, entries, members: list, version: str, extras, created: int, refs_info: dict,
                  wheel_info) -> tuple[Path, list[BundleEntry]]:
    info = {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        "deconv_edge": version,
        "runtime_extras": extras,
        "artifacts": [{"file": f"{device_agent.MODELS_DIR}/{e.name}", "format": e.manifest.format,
                       "runtime": e.manifest.runtime, "scale": e.manifest.scale, "status": e.manifest.status,
                       "sha256": e.manifest.artifact["sha256"], "size_bytes": e.artifact.stat().st_size}
                      for e in entries],
    }
    if refs_info:
        info["references"] = refs_info
    if wheel_info:
        info["wheelhouse"] = wheel_info
    requirements = (f"# Runtime requirements of deconv-edge {version} for these artifacts (extras: "
                    f"{', '.join(extras) or 'none'}).\n" + "\n".join(runtime_requirements(extras)) + "\n")
    members.append(("bundle.json", (json.dumps(info, indent=2) + "\n").encode()))
    members.append(("requirements.txt", requirements.encode()))
    readme = _readme(entries, version, extras)
    if wheel_info:
        tgt = wheel_info["target"]
        readme += (f"\n## Offline install\n\n`wheels/` holds every wheel for {tgt['platform']} / Python {tgt['python']} "
                   f"(glibc {tgt['glibc']} or newer): nothing is downloaded on the device.\n\n```sh\n"
                   f"python3 -m venv ~/deconv-edge/venv\n~/deconv-edge/venv/bin/pip install --no-index "
                   f"--find-links wheels '{wheel_info['requirement']}'\n```\n")
    if refs_info:
        readme += ("\n## Accuracy on this device\n\n`refs/` holds small reference pictures and the workstation's "
                   "results on them: `deconv-edge verify --accuracy .` runs each model with the backend it uses "
                   "here and compares.\n")
    members.append(("README.md", readme.encode()))
    sums = []
    for name, src in members:
        digest = hashlib.sha256(src).hexdigest() if isinstance(src, bytes) else sha256_file(src)
        sums.append(f"{digest}  {name}\n")
    members.append((device_agent.SUMS_FILE, "".join(sums).encode()))

    with atomic_path(out) as tmp:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            _add_dir(tar, device_agent.MODELS_DIR, created)
            for name, src in members:
                data = src if isinstance(src, bytes) else Path(src).read_bytes()
                ti = tarfile.TarInfo(name)
                ti.size, ti.mtime, ti.mode = len(data), created, 0o644
                tar.addfile(ti, io.BytesIO(data))
    return out, entries


def _add_dir(tar: tarfile.TarFile, name: str, mtime: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
    tar.addfile(ti)
