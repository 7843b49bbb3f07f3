"""A real OpenSSH server on 127.0.0.1 for the deploy tests (no mocks).

``sshd`` runs in the foreground (``-D``) on a free port with a temporary host key, a temporary user key in a
temporary ``AuthorizedKeysFile``, ``StrictModes no`` and ``UsePAM no``, as the current user: as root it may log
in as root; as any other user only as that user. The client side gets a ``known_hosts`` file with the host key
(pass it with ``--known-hosts``; ``~/.ssh`` is never touched). Each server may give its sessions their own
``HOME``, so that two servers on one machine look like two devices to ``--path ~/...``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SSHD = "/usr/sbin/sshd"


def sshd_missing_reason() -> Optional[str]:
    """Why the tests cannot run a server here, or ``None``."""
    if not Path(SSHD).is_file():
        return f"{SSHD} is not installed (Debian: apt-get install openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (Debian: apt-get install openssh-client)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deconv-edge-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class SshServer:
    port: int
    user: str
    identity: Path          # the client's private key
    known_hosts: Path       # holds this server's host key
    log: Path
    proc: subprocess.Popen
    home: Optional[Path] = None     # HOME of its sessions, when set

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_sshd(folder: Path, user_key: Path, env: Optional[dict] = None, known_hosts: Optional[Path] = None,
               home: Optional[Path] = None, timeout_s: float = 10.0) -> SshServer:
    """Start ``sshd`` with its files in ``folder``; ``user_key`` (from :func:`keygen`) may log in.

    Args:
        env: variables set in every session (``SetEnv``), e.g. what a device's system Python would see.
        known_hosts: append the host key here (default ``folder/known_hosts``).
        home: ``HOME`` for its sessions (created); paths and values must not contain spaces.
    """
    folder.mkdir(parents=True, exist_ok=True)
    host_key = keygen(folder / "host_key")
    authorized = folder / "authorized_keys"
    authorized.write_text(Path(str(user_key) + ".pub").read_text())
    port = free_port()
    lines = [
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}", "StrictModes no", "UsePAM no", "PermitRootLogin yes",
        "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "Subsystem sftp internal-sftp", "LogLevel VERBOSE", "MaxStartups 50",
    ]
    env = dict(env or {})
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
    if env:
        lines.append("SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()))
    config = folder / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    if os.geteuid() == 0:
        # Privilege separation directory, normally made by the init system; sshd refuses to start without it.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = folder / "sshd.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log_fh,
                                stderr=subprocess.STDOUT)
    known = known_hosts or folder / "known_hosts"
    key_type, key_b64 = host_key.with_suffix(".pub").read_text().split()[:2]
    with open(known, "a") as fh:
        fh.write(f"[127.0.0.1]:{port} {key_type} {key_b64}\n")
    server = SshServer(port=port, user=getpass.getuser(), identity=user_key, known_hosts=known, log=log, proc=proc,
                       home=home)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"sshd did not answer on port {port} within {timeout_s} s: {log.read_text()[-2000:]}")
        time.sleep(0.1)
