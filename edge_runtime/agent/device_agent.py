"""Device side of ``deconv-edge deploy``: unpack a bundle beside the last release, check it, switch to it.

``deploy`` sends this file's source over SSH and runs it as ``python3 - COMMAND ARGS...``, so the device needs
nothing but Python: the module is self-contained (standard library only, Python 3.6+ syntax; Jetson and older
Raspberry Pi OS images ship old interpreters). :mod:`edge_runtime.ship.bundle` imports the same checks, so the
workstation and the device refuse exactly the same archives.

Layout under the deployment root on the device::

    ROOT/incoming/BUNDLE.tar.gz     copied here first (a copy cut short never touches a release)
    ROOT/releases/20260101T120000Z-0123456789ab/   one unpacked, checked bundle per deployment
    ROOT/current -> releases/...    symlink, replaced atomically (rename) only after the new release checks out
    ROOT/venv/                      the runtime (``deploy --setup``)

Commands (each prints one JSON object on stdout; on failure ``error: ...`` on stderr and exit status 1):
``prepare ROOT``, ``unpack ROOT BUNDLE_FILE``, ``switch ROOT RELEASE KEEP``, ``discard ROOT RELEASE``,
``check DIR``.
"""

import hashlib
import json
import os
import platform
import shutil
import sys
import tarfile
import time
import zlib

SUMS_FILE = "SHA256SUMS"
MODELS_DIR = "models"
_TMP_PREFIX = ".tmp-"
#: A half-unpacked release older than this is left over from a crash and may be removed.
_STALE_TMP_S = 3600
#: Manifests and SHA256SUMS are kilobytes: larger ones are refused unread (a 512 MiB "manifest" in a 531 KB
#: bundle would otherwise be decompressed into memory).
MAX_SMALL_FILE_BYTES = 1 << 20
#: Hex digits of the bundle's sha256 that end a release name (``STAMP-0123456789ab``).
RELEASE_HASH_CHARS = 12


class AgentError(Exception):
    """Refused input (unsafe archive, checksum mismatch, ...): one line for the user."""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path_problem(name):
    """Why an archive or checksum-list path is unsafe, or ``None``: absolute paths and ``..`` escape the folder."""
    if not name or "\x00" in name:
        return "empty or NUL in name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    if ".." in norm.split("/"):
        return "'..' in path"
    return None


def member_problem(member):
    """Why a tar member must not be unpacked, or ``None``. Only plain files and folders are allowed."""
    problem = path_problem(member.name)
    if problem:
        return problem
    if member.issym() or member.islnk():
        return "link"
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "device or special file"
    if not (member.isfile() or member.isdir()):
        return "not a plain file or folder"
    return None


def safe_members(tar):
    """All members of an open tar, after refusing the whole archive if any one is unsafe.

    Raises:
        AgentError: unsafe member, or a truncated / corrupt archive (names the member being read).
    """
    members = []
    try:
        for member in tar:
            problem = member_problem(member)
            if problem:
                raise AgentError(f"refusing bundle: member '{member.name}' is unsafe ({problem})")
            members.append(member)
        # tarfile stops at the end-of-archive blocks and never reads gzip's trailer (CRC and length), so an
        # archive cut short by a few bytes would pass: read the stream to its end.
        fileobj = getattr(tar, "fileobj", None)
        if fileobj is not None:
            while fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        where = f"in or after '{members[-1].name}'" if members else "at the first member"
        raise AgentError(f"bundle is truncated or corrupt: reading stopped {where} ({exc})") from None
    return members


def safe_extract(tar_path, dest):
    """Unpack ``tar_path`` (gzip tar) into the new folder ``dest``: explicit checks, then tarfile's ``data``
    filter where this Python has it (3.12+, and the 3.8.17+ / 3.9.17+ / 3.10.12+ / 3.11.4+ backports), else
    :func:`extract_plain`, which gives the same result by writing each file itself. Raspberry Pi OS
    Bookworm's Python is 3.11.2, older than the backport."""
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            members = safe_members(tar)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:
                extract_plain(tar, members, dest)
    except AgentError:
        raise
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise AgentError(f"cannot unpack '{tar_path}': {exc}") from None


def extract_plain(tar, members, dest):
    """Unpack checked ``members`` (plain files and folders, see :func:`member_problem`) without ``extractall``.

    What the ``data`` filter guarantees, done by hand: every path stays under ``dest`` (also through a link
    that may already be there), nothing is chowned to the archive's owners, modes lose setuid/setgid/sticky
    and group/other write (files 0644, or 0755 when the archive marks them executable; folders 0755), an
    existing file or link is never written through (``O_EXCL | O_NOFOLLOW``). Modification times are kept.
    """
    root = os.path.realpath(dest)
    folders = []
    for member in members:
        problem = member_problem(member)
        if problem:  # callers pass safe_members' list; check again so this function is safe on its own
            raise AgentError(f"refusing bundle: member '{member.name}' is unsafe ({problem})")
        parts = [p for p in member.name.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts:
            continue
        target = os.path.join(root, *parts)
        parent = target if member.isdir() else os.path.dirname(target)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        real_parent = os.path.realpath(parent)
        if real_parent != root and not real_parent.startswith(root + os.sep):
            raise AgentError(f"refusing bundle: member '{member.name}' would land outside {dest}")
        if member.isdir():
            folders.append((target, member.mtime))
            continue
        mode = 0o755 if member.mode & 0o100 else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(os.path.join(real_parent, parts[-1]), flags, mode)
        except FileExistsError:
            raise AgentError(f"refusing bundle: member '{member.name}' appears twice") from None
        src = tar.extractfile(member)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(os.path.join(real_parent, parts[-1]), mode)  # the umask must not decide a bundle's modes
        os.utime(os.path.join(real_parent, parts[-1]), (member.mtime, member.mtime))
    # Folders last, deepest first (as extractall does): writing their files changed their times.
    for target, mtime in sorted(folders, reverse=True):
        os.utime(target, (mtime, mtime))


def read_sums(text, where=SUMS_FILE):
    """Parse ``sha256sum`` output (``HEX  PATH`` or ``HEX *PATH``) into ``{path: hex}``."""
    sums = {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise AgentError(f"{where} line {i} is not 'SHA256  PATH'")
        name = parts[1].strip()
        if name.startswith("*"):
            name = name[1:]
        if path_problem(name):
            raise AgentError(f"{where} line {i} names an unsafe path '{name}'")
        sums[name] = digest
    return sums


def sums_problems(actual: dict, sums: dict) -> list:
    """Files hashed (``actual``: name -> sha256) against ``SHA256SUMS`` (``sums``): missing, changed, unlisted."""
    problems = []
    for rel in sorted(sums):
        if rel not in actual:
            problems.append(f"{rel}: missing (listed in {SUMS_FILE})")
        elif actual[rel] != sums[rel]:
            problems.append(f"{rel}: sha256 mismatch ({actual[rel][:12]}... != {sums[rel][:12]}... in "
                            f"{SUMS_FILE}): damaged or modified")
    return problems + [f"{rel}: not listed in {SUMS_FILE}" for rel in sorted(set(actual) - set(sums))]


def check_tree(root):
    """Every problem with an unpacked bundle (empty list = good): checksums, unlisted files, manifests.

    The full manifest schema is checked by ``deconv-edge verify`` where the runtime is installed; here (no
    package needed) each manifest must parse and name an artifact whose sha256 matches.
    """
    sums_path = os.path.join(root, SUMS_FILE)
    if not os.path.isfile(sums_path):
        return [f"{SUMS_FILE}: missing (not a bundle, or a truncated one)"]
    try:
        if os.path.getsize(sums_path) > MAX_SMALL_FILE_BYTES:
            raise AgentError(f"larger than {MAX_SMALL_FILE_BYTES} bytes: not a checksum list")
        with open(sums_path) as fh:
            sums = read_sums(fh.read())
    except (AgentError, OSError, UnicodeDecodeError) as exc:
        return [f"{SUMS_FILE}: {exc}"]
    problems = []
    actual = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if rel == SUMS_FILE:
                continue
            if os.path.islink(full) or not os.path.isfile(full):
                problems.append(f"{rel}: not a plain file")
                continue
            actual[rel] = sha256_file(full)
    problems += sums_problems(actual, sums)
    for rel in sorted(actual):
        if is_manifest_name(rel):
            with open(os.path.join(root, rel), "rb") as fh:
                problems.extend(manifest_problems(rel, fh.read(MAX_SMALL_FILE_BYTES + 1), actual))
    return problems


def is_manifest_name(rel):
    return rel.startswith(MODELS_DIR + "/") and rel.endswith(".json")


def manifest_problems(rel, data, hashes):
    """Problems with the manifest ``rel`` (its bytes ``data``) given ``{path: sha256}`` of the bundle's files."""
    if len(data) > MAX_SMALL_FILE_BYTES:
        return [f"{rel}: larger than {MAX_SMALL_FILE_BYTES} bytes: not a manifest"]
    try:
        manifest = json.loads(data.decode("utf-8"))
        artifact = manifest["artifact"]
        file_name, expected = artifact["file"], artifact["sha256"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        return [f"{rel}: manifest is not readable ({exc.__class__.__name__}: {str(exc)[:120]})"]
    if not isinstance(file_name, str) or path_problem(file_name) or "/" in file_name.replace("\\", "/"):
        return [f"{rel}: names artifact '{str(file_name)[:80]}', which is not a plain file name"]
    artifact_rel = rel.rsplit("/", 1)[0] + "/" + str(file_name)
    if artifact_rel not in hashes:
        return [f"{rel}: names artifact '{file_name}', which is not in the bundle"]
    if hashes[artifact_rel] != expected:
        return [f"{artifact_rel}: sha256 mismatch with its manifest {rel} ({hashes[artifact_rel][:12]}... != "
                f"{str(expected)[:12]}...): damaged or modified"]
    return []


def _artifacts(root):
    models = os.path.join(root, MODELS_DIR)
    names = sorted(os.listdir(models)) if os.path.isdir(models) else []
    return [MODELS_DIR + "/" + n[:-5] for n in names if n.endswith(".json") and n[:-5] in names]


def cmd_prepare(root):
    root = os.path.abspath(os.path.expanduser(root))
    for sub in ("incoming", "releases"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    current = os.path.join(root, "current")
    return {"root": root, "python": platform.python_version(), "machine": platform.machine(),
            "rsync": shutil.which("rsync") is not None,
            "venv": os.path.isfile(os.path.join(root, "venv", "bin", "python")),
            "runtime": os.path.isfile(os.path.join(root, "venv", "bin", "deconv-edge")),
            "current": os.readlink(current) if os.path.islink(current) else None}


def cmd_unpack(root, bundle_file):
    """Unpack into a hidden folder, check it, then rename it to its release name; ``current`` is untouched."""
    if path_problem(bundle_file) or "/" in bundle_file:
        raise AgentError(f"bad bundle file name '{bundle_file}'")
    bundle = os.path.join(root, "incoming", bundle_file)
    if not os.path.isfile(bundle):
        raise AgentError(f"'{bundle}' is not on the device (the copy did not finish?)")
    releases = os.path.join(root, "releases")
    # Microseconds in the name: releases sort by age even when two land in the same second (pruning relies on it).
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int((now % 1) * 1e6):06d}Z"
    release = stamp + "-" + sha256_file(bundle)[:RELEASE_HASH_CHARS]
    while os.path.exists(os.path.join(releases, release)):
        release += "+"
    tmp = os.path.join(releases, _TMP_PREFIX + release)
    try:
        os.makedirs(tmp)
        safe_extract(bundle, tmp)
        problems = check_tree(tmp)
        if problems:
            raise AgentError("bundle fails its checks: " + "; ".join(problems))
        os.rename(tmp, os.path.join(releases, release))
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    os.remove(bundle)  # Unpacked and checked: the archive only costs SD-card space now.
    final = os.path.join(releases, release)
    return {"release": release, "dir": final, "artifacts": _artifacts(final)}


def cmd_switch(root, release, keep):
    """Point ``current`` at ``release`` with one rename (never a moment without a ``current``); prune."""
    releases = os.path.join(root, "releases")
    if path_problem(release) or "/" in release or not os.path.isdir(os.path.join(releases, release)):
        raise AgentError(f"no release '{release}' under {releases}")
    current = os.path.join(root, "current")
    if os.path.exists(current) and not os.path.islink(current):
        raise AgentError(f"{current} exists and is not a symlink; move it away first")
    previous = os.readlink(current) if os.path.islink(current) else None
    link_tmp = os.path.join(root, f".current-{os.getpid()}")
    if os.path.lexists(link_tmp):
        os.remove(link_tmp)
    os.symlink(os.path.join("releases", release), link_tmp)  # Relative: the root may be moved.
    os.replace(link_tmp, current)
    removed = _prune(releases, release, previous, int(keep))
    return {"release": release, "previous": previous, "removed": removed}


def _prune(releases, current, previous, keep):
    names = sorted(n for n in os.listdir(releases) if not n.startswith("."))
    protected = {current, os.path.basename(previous or "")}
    removed = []
    for name in names[:max(len(names) - keep, 0)]:
        if name not in protected:
            shutil.rmtree(os.path.join(releases, name), ignore_errors=True)
            removed.append(name)
    now = time.time()
    for name in os.listdir(releases):
        path = os.path.join(releases, name)
        if name.startswith(_TMP_PREFIX) and now - os.path.getmtime(path) > _STALE_TMP_S:
            shutil.rmtree(path, ignore_errors=True)
    return removed


def cmd_discard(root, release):
    """Remove an unpacked release that failed a later check (never the current one)."""
    releases = os.path.join(root, "releases")
    path = os.path.join(releases, release)
    current = os.path.join(root, "current")
    if path_problem(release) or "/" in release or not os.path.isdir(path):
        raise AgentError(f"no release '{release}' under {releases}")
    if os.path.islink(current) and os.path.basename(os.readlink(current)) == release:
        raise AgentError(f"release '{release}' is current; not removing it")
    shutil.rmtree(path)
    return {"removed": release}


def cmd_check(folder):
    problems = check_tree(os.path.expanduser(folder))
    if problems:
        raise AgentError("; ".join(problems))
    return {"ok": True, "artifacts": _artifacts(os.path.expanduser(folder))}


COMMANDS = {"prepare": (cmd_prepare, 1), "unpack": (cmd_unpack, 2), "switch": (cmd_switch, 3),
            "discard": (cmd_discard, 2), "check": (cmd_check, 1)}


def main(argv):
    if not argv or argv[0] not in COMMANDS or len(argv) - 1 != COMMANDS[argv[0]][1]:
        sys.stderr.write(f"usage: device_agent.py {{{','.join(sorted(COMMANDS))}}} ARGS...\n")
        return 2
    func = COMMANDS[argv[0]][0]
    try:
        result = func(*argv[1:])
    except (AgentError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
