"""Bundles: the artifacts for a device in one ``.tar.gz``, with everything needed to prove they arrived intact.

A bundle unpacks (flat) into::

    models/NAME            each artifact ...
    models/NAME.json       ... and its manifest
    bundle.json            what is inside, made by which deconv-edge version
    requirements.txt       the runtime's pip requirements for these artifacts
    README.md              for whoever opens it on the device
    SHA256SUMS             ``sha256sum -c SHA256SUMS`` checks every file above

:func:`verify` checks a bundle file without unpacking it, an unpacked bundle folder, or a single artifact. The
unpack safety rules and the folder check are shared with the device side (:mod:`edge_runtime.device_agent`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from . import device_agent
from .errors import UserError
from .fsutil import atomic_path, sha256_file
from .manifest import Manifest, load_manifest, manifest_path_for, verify_artifact

BUNDLE_SCHEMA_VERSION = 1
BUNDLE_SUFFIXES = (".tar.gz", ".tgz")
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


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`: ``problems`` is empty when everything matched."""

    target: str
    kind: str                 # "bundle" | "folder" | "artifact"
    files_checked: int
    artifacts: tuple
    problems: tuple

    @property
    def ok(self) -> bool:
        return not self.problems


def is_bundle_name(path: str | Path) -> bool:
    return str(path).endswith(BUNDLE_SUFFIXES)


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
        from train import __version__

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
    rows = "\n".join(f"| `models/{e.name}` | {e.manifest.format} | x{e.manifest.scale} | "
                     f"{tuple(e.manifest.input.shape)} | {e.manifest.status} |" for e in entries)
    extra = f"[{','.join(extras)}]" if extras else ""
    first = f"models/{entries[0].name}"
    return f"""# deconv-edge bundle

Super-resolution models for `deconv-edge` {version}, made {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.

| file | format | scale | input shape | accuracy gate |
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


def make_bundle(paths: Sequence[str | Path], out: str | Path) -> tuple[Path, list[BundleEntry]]:
    """Write a bundle of the artifacts at ``paths`` to ``out`` (atomically: a failure leaves no file).

    Raises:
        UserError: bad output name, or any problem :func:`collect_entries` finds.
    """
    out = Path(out)
    if not is_bundle_name(out):
        raise UserError(f"bundle name '{out}' must end with .tar.gz or .tgz")
    entries = collect_entries(paths)
    version = package_version()
    extras = runtime_extras(e.manifest for e in entries)
    created = int(time.time())
    members: list[tuple[str, bytes | Path]] = []
    for e in entries:
        members.append((f"{device_agent.MODELS_DIR}/{e.name}", e.artifact))
        members.append((f"{device_agent.MODELS_DIR}/{e.name}.json", e.manifest_path))
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
    requirements = (f"# Runtime requirements of deconv-edge {version} for these artifacts (extras: "
                    f"{', '.join(extras) or 'none'}).\n" + "\n".join(runtime_requirements(extras)) + "\n")
    members.append(("bundle.json", (json.dumps(info, indent=2) + "\n").encode()))
    members.append(("requirements.txt", requirements.encode()))
    members.append(("README.md", _readme(entries, version, extras).encode()))
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


# ---- verifying ----------------------------------------------------------------------------------------------------
def verify(target: str | Path) -> VerifyReport:
    """Check a bundle (``.tar.gz``, without unpacking), an unpacked bundle folder, or one artifact.

    Raises:
        UserError: ``target`` does not exist or is none of those.
    """
    target = Path(target)
    if target.is_dir():
        return _verify_folder(target)
    if not target.is_file():
        raise UserError(f"'{target}' does not exist")
    if is_bundle_name(target) or tarfile.is_tarfile(target):
        return _verify_tar(target)
    manifest, artifact = load_manifest(target)
    try:
        verify_artifact(manifest, artifact)
        problems: tuple = ()
    except UserError as exc:
        problems = (str(exc),)
    return VerifyReport(str(target), "artifact", 1, (artifact.name,), problems)


def _schema_problems(name: str, data: bytes) -> list[str]:
    """The full manifest schema (the device-side check only reads the artifact's name and hash)."""
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return []  # Reported by device_agent.manifest_problems.
    try:
        Manifest.from_dict(d if isinstance(d, dict) else {}, where=name)
    except UserError as exc:
        return [str(exc)]
    return []


def _compare(hashes: dict[str, str], sums_text: str | None, manifests: dict[str, bytes]) -> list[str]:
    if sums_text is None:
        return [f"{device_agent.SUMS_FILE}: missing (not a bundle, or a truncated one)"]
    try:
        sums = device_agent.read_sums(sums_text)
    except device_agent.AgentError as exc:
        return [str(exc)]
    problems = []
    for name in sorted(sums):
        if name not in hashes:
            problems.append(f"{name}: missing (listed in {device_agent.SUMS_FILE})")
        elif hashes[name] != sums[name]:
            problems.append(f"{name}: sha256 mismatch ({hashes[name][:12]}... != {sums[name][:12]}... in "
                            f"{device_agent.SUMS_FILE}): damaged or modified")
    problems += [f"{n}: not listed in {device_agent.SUMS_FILE}" for n in sorted(set(hashes) - set(sums))]
    for name in sorted(manifests):
        problems += device_agent.manifest_problems(name, manifests[name], hashes)
        problems += _schema_problems(name, manifests[name])
    return problems


def _artifact_names(names: Iterable[str]) -> tuple:
    names = set(names)
    return tuple(sorted(n[:-5] for n in names if device_agent.is_manifest_name(n) and n[:-5] in names))


def _verify_tar(path: Path) -> VerifyReport:
    hashes: dict[str, str] = {}
    manifests: dict[str, bytes] = {}
    sums_text = None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in device_agent.safe_members(tar):
                if not member.isfile():
                    continue
                h = hashlib.sha256()
                keep = member.name == device_agent.SUMS_FILE or device_agent.is_manifest_name(member.name)
                kept = bytearray()
                fh = tar.extractfile(member)
                try:
                    while True:
                        chunk = fh.read(1 << 20)
                        if not chunk:
                            break
                        h.update(chunk)
                        if keep:
                            kept += chunk
                except (tarfile.TarError, EOFError, OSError) as exc:
                    raise device_agent.AgentError(
                        f"bundle is truncated or corrupt in '{member.name}' ({exc})") from None
                if member.name == device_agent.SUMS_FILE:
                    sums_text = kept.decode("utf-8", "replace")
                else:
                    hashes[member.name] = h.hexdigest()
                    if keep:
                        manifests[member.name] = bytes(kept)
    except device_agent.AgentError as exc:
        return VerifyReport(str(path), "bundle", len(hashes), _artifact_names(hashes), (str(exc),))
    except (tarfile.TarError, EOFError, OSError) as exc:
        problem = f"not a readable .tar.gz ({exc.__class__.__name__}: {exc})"
        return VerifyReport(str(path), "bundle", 0, (), (problem,))
    problems = _compare(hashes, sums_text, manifests)
    return VerifyReport(str(path), "bundle", len(hashes), _artifact_names(hashes), tuple(problems))


def _verify_folder(folder: Path) -> VerifyReport:
    # The device's check (checksums, unlisted files, links, manifest hashes), then the full manifest schema.
    problems = device_agent.check_tree(str(folder))
    names = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != device_agent.SUMS_FILE):
        rel = path.relative_to(folder).as_posix()
        names.append(rel)
        if device_agent.is_manifest_name(rel):
            problems += _schema_problems(rel, path.read_bytes())
    return VerifyReport(str(folder), "folder", len(names), _artifact_names(names), tuple(problems))
