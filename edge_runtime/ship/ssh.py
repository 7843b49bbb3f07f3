"""SSH to one device: host names, one multiplexed OpenSSH connection, commands and copies (argument lists only).

Every local command is an argument list; the one string ssh sends to the remote shell is built with
:func:`shlex.quote` around every piece. Host keys are checked as ssh always does.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from deconv_edge_core.errors import UserError
from edge_runtime.agent import device_agent

from . import device_steps as steps

if TYPE_CHECKING:
    from .deploy import DeployConfig

#: Idle seconds a multiplexing master connection outlives its last command (if ``close`` never runs).
CONTROL_PERSIST_S = 60
#: Extra time over ``--connect-timeout`` for the key exchange and login before the connection is given up.
LOGIN_GRACE_S = 20

_USER_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$")


class DeployError(Exception):
    """One host's deployment failed: a one-line reason (the other hosts carry on)."""


@dataclass(frozen=True)
class Host:
    """One target device: ``[ssh://][user@]host[:port]`` (IPv6 in brackets when a port follows)."""

    hostname: str
    user: Optional[str] = None
    port: Optional[int] = None
    text: str = ""

    @property
    def destination(self) -> str:
        """For ssh: ``user@host``."""
        return f"{self.user}@{self.hostname}" if self.user else self.hostname

    @property
    def copy_destination(self) -> str:
        """For scp/rsync ``DEST:PATH``: an IPv6 address needs brackets there."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}" if self.user else host

    @property
    def label(self) -> str:
        """Name for messages and the results folder (``user@host``, plus ``_port`` when the HOST named one)."""
        base = self.text.split("://", 1)[-1]
        return re.sub(r"[^A-Za-z0-9@._-]", "_", base.replace("]:", "_").replace("[", "").replace("]", ""))


def parse_host(text: str) -> Host:
    """Parse ``[ssh://][user@]host[:port]``.

    Raises:
        UserError: anything else (in particular a name starting with ``-``, which ssh would read as an option).
    """
    rest = text[len("ssh://"):] if text.startswith("ssh://") else text
    user = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not _USER_RE.match(user):
            raise UserError(f"host '{text}': bad user name '{user}'")
    port = None
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep or not _IPV6_RE.match(host) or (tail and not tail.startswith(":")):
            raise UserError(f"host '{text}': write an IPv6 address as [ADDR] or [ADDR]:PORT")
        port_text = tail[1:] if tail else None
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UserError(f"host '{text}': bad port '{port_text}'")
        port = int(port_text)
    ok = _IPV6_RE.match(host) if ":" in host else _HOSTNAME_RE.match(host)
    if not host or not ok:
        raise UserError(f"host '{text}' is not [user@]host[:port]")
    return Host(hostname=host, user=user, port=port, text=text)


def explain_ssh_failure(stderr: str, host: Host, cfg: DeployConfig) -> str:
    """One line for the usual ways an SSH connection fails."""
    text = stderr.strip()
    port = host.port or cfg.port or 22
    if "Connection refused" in text:
        return f"connection refused on port {port} (no SSH server listening there?)"
    if "during banner exchange" in text:
        return (f"port {port} answers but no SSH server spoke within {cfg.connect_timeout_s:g} s (not an SSH port, "
                "or sshd is overloaded)")
    if "timed out" in text or "Operation timed out" in text:
        return f"no answer within {cfg.connect_timeout_s:g} s (device off, wrong address, or port {port} filtered)"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return ("host key has CHANGED since it was recorded in known_hosts (reinstalled device, or someone in "
                "between): check it, then remove the old key with ssh-keygen -R")
    if "Host key verification failed" in text or "No ED25519 host key is known" in text:
        return ("host key is not known: connect once with ssh and check it, or pass --accept-new-host-key to "
                "trust a device seen for the first time")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return (f"login refused for {host.user or 'the default user'} (key not accepted: check --identity and "
                "the device's ~/.ssh/authorized_keys)")
    for needle, reason in (("Could not resolve hostname", "cannot resolve the host name"),
                           ("No route to host", "no route to host"),
                           ("Network is unreachable", "network is unreachable")):
        if needle in text:
            return reason
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "ssh failed without a message"


class Ssh:
    """Commands and copies to one host over a multiplexed OpenSSH connection (argument lists only)."""

    def __init__(self, host: Host, cfg: DeployConfig, control_path: Optional[str]):
        self.host = host
        self.cfg = cfg
        self.control_path = control_path
        self.master_started = False

    def options(self, master: bool = False) -> list[str]:
        o = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(self.cfg.connect_timeout_s))}",
             "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        port = self.host.port or self.cfg.port
        if port:
            o += ["-o", f"Port={port}"]
        if self.cfg.accept_new_host_key:
            o += ["-o", "StrictHostKeyChecking=accept-new"]
        if self.cfg.known_hosts:
            o += ["-o", f"UserKnownHostsFile={_ssh_config_value(str(Path(self.cfg.known_hosts).resolve()))}"]
        if self.cfg.identity:
            o += ["-i", self.cfg.identity, "-o", "IdentitiesOnly=yes"]
        if self.control_path:
            o += ["-o", f"ControlPath={self.control_path}"]
            o += (["-o", "ControlMaster=yes", "-o", f"ControlPersist={CONTROL_PERSIST_S}"] if master
                  else ["-o", "ControlMaster=no"])
        return o

    def open(self) -> None:
        """Connect and log in (the master connection later commands reuse); :class:`DeployError` if not."""
        if self.control_path:
            argv = ["ssh", *self.options(master=True), "-f", "-N", self.host.destination]
        else:
            argv = ["ssh", *self.options(), self.host.destination, "true"]
        # stderr to a file, not a pipe: the backgrounded master keeps it open for as long as it lives.
        with tempfile.TemporaryFile(mode="w+") as err:
            try:
                rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    timeout=self.cfg.connect_timeout_s + LOGIN_GRACE_S).returncode
            except subprocess.TimeoutExpired:
                raise DeployError(f"no login within {self.cfg.connect_timeout_s + LOGIN_GRACE_S:g} s") from None
            err.seek(0)
            message = err.read()
        if rc != 0:
            raise DeployError(explain_ssh_failure(message, self.host, self.cfg))
        self.master_started = bool(self.control_path)

    def close(self) -> None:
        if self.master_started:
            subprocess.run(["ssh", "-o", f"ControlPath={self.control_path}", "-O", "exit", self.host.destination],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
            self.master_started = False

    def run(self, argv: Sequence[str], input_text: Optional[str] = None,
            timeout_s: Optional[float] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` on the device; the remote shell sees each piece quoted, so nothing is interpreted."""
        remote = " ".join(shlex.quote(str(a)) for a in argv)
        try:
            proc = subprocess.run(["ssh", *self.options(), self.host.destination, remote], input=input_text,
                                  stdin=None if input_text is not None else subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeployError(f"'{argv[0]}' on the device took more than {timeout_s:g} s") from None
        if proc.returncode == 255 and not proc.stdout:
            raise DeployError("ssh: " + explain_ssh_failure(proc.stderr, self.host, self.cfg))
        return proc

    def copy(self, local: Path, remote_path: str, use_rsync: bool) -> str:
        """Copy one file to ``remote_path`` (rsync keeps a partial file aside, so a retry resumes)."""
        local = str(Path(local).resolve())  # Absolute: never read as an option.
        target = f"{self.host.copy_destination}:{remote_path}"
        if use_rsync:
            rsh = " ".join(shlex.quote(a) for a in ["ssh", *self.options()])  # rsync splits -e itself, no shell
            argv = ["rsync", "-s", "-t", "--partial", "--partial-dir=.rsync-partial", "--chmod=F644", "-e", rsh,
                    local, target]
            tool = "rsync"
        else:
            argv = ["scp", "-q", *self.options(), local, target]
            tool = "scp"
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            raise DeployError(f"{tool} failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
        return tool

    def agent(self, *args: str) -> dict:
        """Run :mod:`edge_runtime.agent.device_agent` on the device with the device's own Python."""
        source = Path(device_agent.__file__).read_text()
        proc = self.run(steps.agent_argv(self.cfg.remote_python, *args), input_text=source)
        if proc.returncode != 0:
            tail = last_line(proc.stderr) or f"exit status {proc.returncode}"
            if proc.returncode == 127:
                raise DeployError(f"'{self.cfg.remote_python}' not found on the device (install python3 there, or "
                                  "name the interpreter with --python)")
            raise DeployError(f"{args[0]} on the device: {tail[len('error: '):] if tail.startswith('error: ') else tail}")
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeployError(f"{args[0]} on the device printed no result: {last_line(proc.stderr)}") from None


def _ssh_config_value(value: str) -> str:
    # ssh splits -o values on whitespace (a list of files); quote such paths the ssh_config way.
    if '"' in value:
        raise UserError(f"path {value!r} contains a double quote, which ssh options cannot express")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""
