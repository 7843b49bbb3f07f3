"""Checking a bundle (:func:`verify`): a ``.tar.gz`` without unpacking it, an unpacked bundle folder, or one artifact.

The unpack safety rules and the folder check are shared with the device side (:mod:`edge_runtime.agent.device_agent`).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from deconv_edge_core.errors import UserError
from deconv_edge_core.manifest import Manifest, load_manifest, verify_artifact
from edge_runtime.agent import device_agent

BUNDLE_SUFFIXES = (".tar.gz", ".tgz")


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
    if len(data) > device_agent.MAX_SMALL_FILE_BYTES:
        return []  # Reported by device_agent.manifest_problems.
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
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
    problems = device_agent.sums_problems(hashes, sums)
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
                # Only kilobytes are kept in memory: a larger "manifest" is hashed, and refused by its size.
                limit = device_agent.MAX_SMALL_FILE_BYTES + 1
                kept = bytearray()
                fh = tar.extractfile(member)
                try:
                    while True:
                        chunk = fh.read(1 << 20)
                        if not chunk:
                            break
                        h.update(chunk)
                        if keep and len(kept) < limit:
                            kept += chunk[:limit - len(kept)]
                except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
                    raise device_agent.AgentError(
                        f"bundle is truncated or corrupt in '{member.name}' ({exc})") from None
                if member.name == device_agent.SUMS_FILE:
                    if len(kept) >= limit:
                        raise device_agent.AgentError(f"{device_agent.SUMS_FILE}: larger than "
                                                      f"{device_agent.MAX_SMALL_FILE_BYTES} bytes: not a checksum list")
                    sums_text = kept.decode("utf-8", "replace")
                else:
                    hashes[member.name] = h.hexdigest()
                    if keep:
                        manifests[member.name] = bytes(kept)
    except device_agent.AgentError as exc:
        return VerifyReport(str(path), "bundle", len(hashes), _artifact_names(hashes), (str(exc),))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
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
            with open(path, "rb") as fh:
                problems += _schema_problems(rel, fh.read(device_agent.MAX_SMALL_FILE_BYTES + 1))
    return VerifyReport(str(folder), "folder", len(names), _artifact_names(names), tuple(problems))
