"""``tests/aarch64/run.sh`` (``make test-aarch64``, run by ``.ci/run``): unreachable downloads skip, real failures fail.

Only its first stage runs here (a Debian archive on 127.0.0.1), in a few seconds; the emulated device itself is
``make test-aarch64``.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(os.environ.get("DCE_AARCH64_PYTHON") is not None, reason="inside make test-aarch64 itself"),
    pytest.mark.skipif(not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")),
                       reason="run.sh skips before its downloads without an sshd"),
]


def _run(tmp_path: Path, mirror: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOST_PYTHON=sys.executable, DCE_AARCH64_CACHE=str(tmp_path / "cache"),
               DCE_AARCH64_WORK=str(tmp_path / "work"), DEBIAN_MIRROR=mirror, DCE_DOWNLOAD_RETRY_S="0")
    return subprocess.run(["bash", str(REPO / "tests" / "aarch64" / "run.sh")], capture_output=True, text=True,
                          env=env, timeout=300)


def test_an_unreachable_archive_is_a_warning_and_a_skip(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _run(tmp_path, f"http://127.0.0.1:{port}/debian")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: make test-aarch64 skipped: the Debian archive cannot be reached" in r.stderr
    assert "make test-aarch64: passed" not in r.stdout


def test_an_archive_that_answers_wrongly_fails(tmp_path):
    """Reachable but without the suite (404): a real failure, never a skip."""
    (tmp_path / "empty").mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path / "empty"), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = _run(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/debian")
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode != 0, r.stdout + r.stderr
    assert "skipped" not in r.stderr and "404" in r.stderr
