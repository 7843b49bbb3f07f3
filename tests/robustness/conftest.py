"""Fixtures of the robustness suite: shared hostile inputs, an unwritable folder, the CLI run in subprocesses.

The hostile cases run the real ``deconv-edge`` CLI (``python -m edge_runtime``) in a subprocess each. They
are started a few at a time (:data:`PARALLEL`) the first time any of them is asked for, so the suite costs
about half the wall time it would one after the other; each test then checks its own case's outcome.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from . import hostile as H
from .cases import CASES, Case, Shared

#: Cases run at once (each is mostly interpreter start-up and file I/O).
PARALLEL = max(2, min(6, 2 * (os.cpu_count() or 1)))


@dataclass
class Outcome:
    """What one run did."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool
    changed: list        # files that existed before and differ (or vanished) after
    leftovers: list      # temporary files left behind


def _snapshot(folders) -> dict:
    state = {}
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                p = Path(root) / name
                if p.is_symlink():
                    continue
                try:
                    state[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError:
                    state[str(p)] = "unreadable"
    return state


def _leftovers(folders) -> list:
    found = []
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            found += [str(Path(root) / n) for n in files if ".tmp-" in n or n.startswith(".deconv-edge-probe-")]
    return found


def run_case(case: Case, folder: Path, shared: Shared) -> Outcome:
    """Build ``case`` in ``folder`` and run it through the real CLI in a subprocess."""
    folder.mkdir(parents=True)
    if shared.readonly is not None:
        (folder / "RO").symlink_to(shared.readonly)
    try:
        argv = [str(a) for a in case.build(folder, shared)]
    except Exception as exc:  # noqa: BLE001 - a broken case fails its own test, not the whole suite
        return Outcome(-1, "", f"case build failed: {type(exc).__name__}: {exc}", 0.0, False, [], [])
    watched = [folder] + ([shared.readonly] if shared.readonly is not None else [])
    before = _snapshot(watched)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "edge_runtime", *argv], cwd=folder, env=env,
                              capture_output=True, text=True, errors="replace", timeout=case.timeout_s)
        rc, out, err, timed_out = proc.returncode, proc.stdout, proc.stderr, False
    except subprocess.TimeoutExpired as exc:
        rc, timed_out = -9, True
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    wall = time.perf_counter() - t0
    after = _snapshot(watched)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    return Outcome(rc, out, err, wall, timed_out, changed, _leftovers(watched))


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Shared:
    folder = tmp_path_factory.mktemp("hostile-shared")
    readonly = _readonly_folder(folder / "ro")
    yield Shared(folder=folder, huge_png=H.png_valid_huge(folder / "huge_10000x10000.png"),
                 big_manifest_bundle=H.bundle_with_big_manifest(folder / "big_manifest.tar.gz"),
                 good_bundle=H.good_bundle(folder / "good"), readonly=readonly)
    if readonly is not None and os.geteuid() == 0:
        subprocess.run(["umount", str(readonly)], check=False)
    elif readonly is not None:
        readonly.chmod(0o755)


def _readonly_folder(path: Path) -> Optional[Path]:
    """A folder no run can write into, holding one good file: a read-only tmpfs as root, else mode 0555."""
    path.mkdir()
    if os.geteuid() != 0:
        H.good_picture(path / "keep.png")
        path.chmod(0o555)
        return path
    if shutil.which("mount") is None:
        return None
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True)
    if made.returncode != 0:
        return None  # no CAP_SYS_ADMIN (an unprivileged container): the read-only cases skip
    H.good_picture(path / "keep.png")
    if subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(path)], check=False)
        return None
    return path


@pytest.fixture(scope="session")
def outcomes(request, shared, tmp_path_factory) -> dict:
    """Outcome of every selected case, run :data:`PARALLEL` at a time on first use."""
    wanted = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "hostile_case" in callspec.params:
            wanted.add(callspec.params["hostile_case"].id)
    todo = [c for c in CASES if c.id in wanted and not (c.needs_readonly and shared.readonly is None)]
    root = tmp_path_factory.mktemp("hostile-cases")
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {c.id: pool.submit(run_case, c, root / c.id, shared) for c in todo}
        return {cid: f.result() for cid, f in futures.items()}
