#!/usr/bin/env python3
"""Unpack Debian packages (and their dependencies) into a folder, without installing anything on this system.

``make test-aarch64`` builds an emulated Raspberry Pi OS from it: the aarch64 userland of Debian bookworm (its
Python 3.11.2, as on Raspberry Pi OS Bookworm) and Debian trixie's static ``qemu-user`` 10.x to run it. Nothing
is configured or executed: the packages' files are laid out, maintainer scripts are ignored.

Downloads are checked like apt does: ``InRelease`` against Debian's archive keyring (``gpgv``), the package
index against ``InRelease``, each ``.deb`` against the index. They are kept in ``--cache``; the indexes are
fetched again once they are older than ``--max-index-age-days`` (or when a package they name is gone).

Usage::

    debroot.py --suite bookworm --arch arm64 --cache DIR --out SYSROOT python3.11-venv libstdc++6
    debroot.py --suite trixie --arch amd64 --cache DIR --out DIR --no-deps qemu-user

The archive is the one this machine's apt uses (``/etc/apt/sources.list*``), or ``$DEBIAN_MIRROR``, else
deb.debian.org. Exit status 75 means the archive could not be reached.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Packages that only matter to a booted or dpkg-managed system (maintainer scripts, shells, certificates):
# the emulated device runs one Python, and any program it starts is the host's (see python3 wrapper).
SKIP = {"debconf", "debconf-2.0", "perl-base", "dpkg", "base-files", "dash", "bash", "coreutils", "tar",
        "sensible-utils", "init-system-helpers", "ca-certificates", "openssl", "tzdata", "usrmerge",
        "usr-is-merged", "install-info", "libpam-runtime", "libpam-modules", "cdebconf"}
# Files nobody reads on the emulated device; leaving them out saves a third of the unpacked size.
DROP = ("usr/share/doc/", "usr/share/man/", "usr/share/locale/", "usr/share/info/", "usr/share/lintian/")


class Fail(Exception):
    """A one-line reason to stop."""


class Unreachable(Fail):
    """The archive could not be reached (no network): run.sh skips with a warning instead of failing."""


#: The exit status for :class:`Unreachable` (EX_TEMPFAIL).
EXIT_UNREACHABLE = 75


def mirror() -> str:
    """The Debian archive apt uses here (a deb822 ``URIs:`` or a ``deb URL SUITE`` line), or ``$DEBIAN_MIRROR``."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"].rstrip("/")
    texts = [Path(p).read_text(errors="replace") for p in
             ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.sources")),
              *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))] if os.path.isfile(p)]
    for text in texts:
        for m in re.finditer(r"^\s*(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            url = m.group(1).rstrip("/")
            if url.startswith("http") and not url.endswith(("-security", "debian-ports")):
                return url
    return "http://deb.debian.org/debian"  # no Debian apt here: Debian's own redirector


def fetch(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (atomically); a cached ``dest`` with the right hash is reused."""
    if dest.is_file() and (sha256 is None or _sha256(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    for attempt in range(3):
        try:
            with urllib.request.urlopen(url, timeout=120) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
            break
        except OSError as exc:
            # An answer other than a proxy's or gateway's refusal (404: no such file) is the archive's own: a
            # real failure. No answer (refused, no route, DNS, timeout) or a blocking proxy: unreachable.
            code = getattr(exc, "code", None)
            if code is not None and code not in (403, 407, 502, 503, 504):
                raise Fail(f"cannot download {url}: {exc}") from None
            if attempt == 2:
                raise Unreachable(f"cannot download {url}: {exc}") from None
            # $DCE_DOWNLOAD_RETRY_S: the first pause between tries (tests/aarch64/test_run_script.py sets 0).
            time.sleep(float(os.environ.get("DCE_DOWNLOAD_RETRY_S", 2)) * (1 + 2 * attempt))
    if sha256 is not None and _sha256(tmp) != sha256:
        tmp.unlink()
        raise Fail(f"{url}: sha256 does not match the signed index")
    os.replace(tmp, dest)
    return dest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_index(base: str, suite: str, arch: str, cache: Path, max_age_days: float, refresh: bool = False) -> dict:
    """``{package: fields}`` of ``SUITE/main/binary-ARCH``, verified from the signed ``InRelease`` down."""
    folder = cache / "index" / f"{suite}-{arch}"
    parsed = folder / "Packages.json"
    if not refresh and parsed.is_file() and time.time() - parsed.stat().st_mtime < max_age_days * 86400:
        return json.loads(parsed.read_text())
    inrelease = folder / "InRelease"
    if inrelease.exists():
        inrelease.unlink()
    try:
        fetch(f"{base}/dists/{suite}/InRelease", inrelease)
    except Unreachable as exc:
        if refresh or not parsed.is_file():
            raise
        # Offline with an older index: its .debs may all be cached (a missing one is still "unreachable").
        print(f"warning: {exc}; using the cached {suite}/{arch} index", file=sys.stderr)
        return json.loads(parsed.read_text())
    if shutil.which("gpgv") and os.path.isfile(KEYRING):
        proc = subprocess.run(["gpgv", "--keyring", KEYRING, str(inrelease)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise Fail(f"{suite} InRelease: bad signature ({proc.stderr.strip().splitlines()[-1:]})")
    else:
        print(f"warning: gpgv or {KEYRING} missing: {suite}'s index is not signature-checked", file=sys.stderr)
    want = f"main/binary-{arch}/Packages.xz"
    m = re.search(rf"^ ([0-9a-f]{{64}})\s+\d+\s+{re.escape(want)}$", inrelease.read_text(), re.M)
    if not m:
        raise Fail(f"{suite} InRelease lists no {want}")
    xz = fetch(f"{base}/dists/{suite}/{want}", folder / "Packages.xz", m.group(1))
    index: dict = {}
    for stanza in lzma.decompress(xz.read_bytes()).decode("utf-8", "replace").split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+):[ \t]*(.*)$", stanza, re.M))
        if "Package" in fields:
            keep = {k: fields.get(k, "") for k in ("Package", "Version", "Depends", "Pre-Depends", "Provides",
                                                    "Filename", "SHA256", "Size")}
            index[fields["Package"]] = keep
    providers: dict = {}
    for name, f in index.items():
        for p in re.split(r"\s*,\s*", f["Provides"]):
            if p:
                providers.setdefault(p.split()[0], name)
    payload = {"packages": index, "providers": providers}
    parsed.write_text(json.dumps(payload))
    return payload


def resolve(payload: dict, roots: list[str], follow: bool) -> list[str]:
    """The packages ``roots`` need (``Depends`` and ``Pre-Depends``, first alternative that exists)."""
    index, providers = payload["packages"], payload["providers"]
    chosen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop(0)
        name = name if name in index else providers.get(name, name)
        if name in chosen or (name in SKIP and name not in roots):
            continue
        if name not in index:
            raise Fail(f"no package '{name}' in the index")
        chosen.append(name)
        if not follow:
            continue
        deps = ", ".join(x for x in (index[name]["Pre-Depends"], index[name]["Depends"]) if x)
        for group in filter(None, re.split(r"\s*,\s*", deps)):
            alts = [re.split(r"[\s(:]", a.strip())[0] for a in group.split("|")]
            pick = next((a for a in alts if a in index or a in providers), alts[0])
            todo.append(pick)
    return sorted(chosen)


def deb_data(deb: Path) -> tarfile.TarFile:
    """The ``data.tar.*`` member of a ``.deb`` (an ``ar`` archive), opened."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise Fail(f"{deb.name} is not a .deb")
    pos = 8
    while pos < len(raw):
        name = raw[pos:pos + 16].decode().strip().rstrip("/")
        size = int(raw[pos + 48:pos + 58].decode().strip())
        body = raw[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                body = subprocess.run(["zstd", "-dc"], input=body, capture_output=True, check=True).stdout
                return tarfile.open(fileobj=io.BytesIO(body), mode="r:")
            return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
        pos += 60 + size + (size & 1)
    raise Fail(f"{deb.name} has no data.tar")


def _merged(name: str) -> str:
    # Debian's merged /usr: /bin, /sbin and /lib are symlinks into /usr, so lay every file out under usr/.
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    top = name.split("/", 1)[0]
    return f"usr/{name}" if top in ("bin", "sbin", "lib") else name


def unpack(deb: Path, out: Path, keep: tuple = ()) -> None:
    """Lay out a package's files under ``out`` (merged /usr; absolute links made relative, so they stay inside).

    ``keep``: only these paths (e.g. ``usr/bin/qemu-aarch64`` out of qemu-user's 450 MB).
    """
    with deb_data(deb) as tar:
        for m in tar:
            rel = _merged(m.name)
            if not rel or rel.startswith(DROP) or ".." in rel.split("/"):
                continue
            if keep and rel not in keep and not (m.isdir() and any(k.startswith(rel + "/") for k in keep)):
                continue
            dest = out / rel
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            elif m.issym() or m.islnk():
                target = m.linkname
                if m.islnk() or target.startswith("/"):
                    target = os.path.relpath(out / _merged(target), dest.parent)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                os.symlink(target, dest)
            elif m.isfile():
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_symlink():
                    dest.unlink()
                with tar.extractfile(m) as src, open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh)
                os.chmod(dest, m.mode & 0o755 | 0o600)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("packages", nargs="+")
    ap.add_argument("--suite", required=True)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--cache", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--no-deps", action="store_true", help="only the packages named")
    ap.add_argument("--keep", action="append", default=[], metavar="PATH", help="unpack only this file (repeatable)")
    ap.add_argument("--max-index-age-days", type=float, default=7.0)
    args = ap.parse_args(argv)
    try:
        base = mirror()
        payload = load_index(base, args.suite, args.arch, args.cache, args.max_index_age_days)
        try:
            names = resolve(payload, args.packages, follow=not args.no_deps)
        except Fail:
            payload = load_index(base, args.suite, args.arch, args.cache, 0, refresh=True)
            names = resolve(payload, args.packages, follow=not args.no_deps)
        pkgs = payload["packages"]
        stamp = {n: pkgs[n]["Version"] for n in names}
        if args.keep:
            stamp["(keep)"] = sorted(args.keep)
        stamp_file = args.out / ".debroot.json"
        if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
            print(f"{args.out}: up to date ({len(names)} packages)")
            return 0
        debs = []
        for n in names:
            f = pkgs[n]
            url = f"{base}/{f['Filename']}"
            dest = args.cache / "debs" / os.path.basename(f["Filename"])
            try:
                debs.append(fetch(url, dest, f["SHA256"]))
            except Fail:
                # A cached index can name a version the archive has since replaced: fetch the index again.
                payload = load_index(base, args.suite, args.arch, args.cache, 0, refresh=True)
                return main(argv) if payload["packages"][n]["Filename"] != f["Filename"] else 1
        tmp = args.out.with_name(args.out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for d in ("bin", "sbin", "lib"):
            (tmp / "usr" / d).mkdir(parents=True, exist_ok=True)
            os.symlink(f"usr/{d}", tmp / d)
        for deb in debs:
            unpack(deb, tmp, tuple(args.keep))
        (tmp / ".debroot.json").write_text(json.dumps(stamp, indent=1) + "\n")
        shutil.rmtree(args.out, ignore_errors=True)
        os.replace(tmp, args.out)
        size = sum(p.stat().st_size for p in debs)
        print(f"{args.out}: {len(names)} {args.suite}/{args.arch} packages unpacked ({size / 1e6:.0f} MB of .debs)")
        return 0
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Fail as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
