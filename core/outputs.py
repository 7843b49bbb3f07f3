"""Output paths checked before any work starts, and OS errors turned into one line that says what to do.

A run that enhances for ten minutes and then finds its output folder read-only loses those ten minutes, so
every command checks where it will write first: the name is not too long, it is not a folder or a device,
and a file can really be created beside it (a probe, which covers permissions, read-only mounts and a full
disk alike).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import UserError

#: What the user can do about each ``errno`` (the CLI prints ``error: <what failed>: <reason>; <hint>``).
_HINTS = {
    errno.EACCES: "permission denied; pick a folder you can write to, or fix its permissions",
    errno.EPERM: "not permitted; pick a folder you can write to, or fix its permissions",
    errno.EROFS: "the file system is read-only; pick another folder",
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exhausted; free some space or write elsewhere",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f); raise the limit or write less",
    errno.ENAMETOOLONG: "the file name is too long; use a shorter name",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder; fix the path",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EEXIST: "it exists and cannot be replaced; give another name",
    errno.ELOOP: "too many symbolic links; fix the path",
    errno.EMFILE: "too many open files; raise 'ulimit -n'",
    errno.ENOMEM: "out of memory; use smaller inputs or tiles",
}


def describe_os_error(exc: OSError, action: str = "") -> str:
    """``cannot write 'x': permission denied; pick a folder ...`` for an ``OSError`` (one line)."""
    name = exc.filename if exc.filename is not None else ""
    hint = _HINTS.get(exc.errno or 0) or (exc.strerror or str(exc) or type(exc).__name__).lower()
    what = action or ("cannot use" if name else "system error")
    shown = f" '{_short(str(name))}'" if name else ""
    return f"{what}{shown}: {hint}"


def _short(text: str, limit: int = 160) -> str:
    """A path cut to ``limit`` characters for a one-line message (a 5000-character name stays readable)."""
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder if folder.is_dir() else "/", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """Refuse an output file path that cannot be written, before any work is done.

    Checks the name's length, that the target is not a folder, a device or a pipe, and that a file can be
    created in its folder (which is made if missing, as the writers do).

    Args:
        path: the file to be written (atomically, by :mod:`deconv_edge_core.fsutil`).
        what: the option it came from, for the message (``--stats-json``).

    Returns:
        the path.

    Raises:
        UserError: with what to do.
    """
    path = Path(path)
    text = str(path)
    if not text.strip():
        raise UserError(f"{what}: empty file name")
    if "\x00" in text:
        raise UserError(f"{what}: the file name contains a NUL character")
    folder = path.parent
    too_long = [p for p in path.parts if len(os.fsencode(p)) > _name_max(folder)]
    if too_long or len(os.fsencode(text)) >= 4096:
        raise UserError(f"{what} '{_short(text)}': the file name is too long; use a shorter name")
    try:
        if path.is_dir():
            raise UserError(f"{what} '{_short(text)}' is a folder; give a file name (inside it, or beside it)")
        if path.exists() and not path.is_file():
            raise UserError(f"{what} '{_short(text)}' is not a regular file (a device, pipe or socket); "
                            "give a file name")
        probe_folder(folder, what)
    except OSError as exc:
        raise UserError(f"{what}: {describe_os_error(exc, 'cannot write')}") from None
    return path


def check_output_folder(folder: str | Path, what: str = "output folder") -> Path:
    """Refuse an output folder that is a file or cannot be written (it is made if missing).

    Raises:
        UserError: with what to do.
    """
    folder = Path(folder)
    if len(os.fsencode(str(folder))) >= 4096 or any(len(os.fsencode(p)) > 255 for p in folder.parts):
        raise UserError(f"{what} '{_short(str(folder))}': the name is too long; use a shorter name")
    if folder.exists() and not folder.is_dir():
        kind = "a file" if folder.is_file() else "a device, pipe or socket"
        raise UserError(f"{what} '{_short(str(folder))}' is {kind}, not a folder; give a folder or a file name "
                        "with a suffix")
    try:
        probe_folder(folder, what)
    except OSError as exc:
        raise UserError(f"{what}: {describe_os_error(exc, 'cannot write')}") from None
    return folder


def probe_folder(folder: Path, what: str = "output") -> None:
    """Create (and delete) a hidden file in ``folder``: proves the writers will be able to.

    Raises:
        UserError: ``folder`` is a file or cannot be made.
        OSError: the probe itself failed (permissions, read-only, full disk).
    """
    folder = Path(folder) if str(folder) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{what}: '{_short(str(existing))}' is a file, so '{_short(str(folder))}' cannot be a folder")
    # A folder made here stays: the writers would make it anyway.
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".deconv-edge-probe-", dir=folder)
    os.close(fd)
    os.unlink(tmp)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (resolving links; an absent path is compared by its resolved name)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
        return pa.resolve() == pb.resolve()
    except (OSError, RuntimeError):
        return False
