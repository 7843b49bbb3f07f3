"""``deconv-edge deploy``: put a bundle on one or many devices over SSH, check it there, switch to it, bench it.

Per host, over one multiplexed OpenSSH connection (the system's ``ssh``; ``rsync`` for the copy, else ``scp``):

1. connect (``BatchMode``: a refused login fails at once instead of asking for a password);
2. ``prepare``: make the deployment root, learn the device's Python and whether it has rsync;
3. copy the bundle (and, with ``--setup``, a wheel of this package) to ``ROOT/incoming/``;
4. ``--setup``: a virtual environment ``ROOT/venv`` and the wheel installed in it (the device's pip fetches
   the requirements, or reuses the system's packages with ``--system-site-packages``);
5. unpack beside the previous release and check every checksum (:mod:`edge_runtime.device_agent`), then
   ``deconv-edge verify`` it with the device's own runtime when there is one;
6. switch ``ROOT/current`` to it (one atomic rename: a copy or unpack cut short leaves the previous release
   current and intact);
7. ``--bench``: ``deconv-edge bench`` on the device; its JSON comes back to ``deploy-results/HOST/``.

Security: host keys are checked as ssh always does (``--accept-new-host-key`` relaxes that to ``accept-new``,
never further). Every local command is an argument list; the one string ssh sends to the remote shell is built
with :func:`shlex.quote` around every piece.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from . import device_agent
from .bundle import runtime_extras, verify
from .errors import UserError
from .fsutil import sha256_file, write_json_atomic, write_text_atomic

DEFAULT_REMOTE_PATH = "deconv-edge"
DEFAULT_RESULTS_DIR = "deploy-results"
COPY_TOOLS = ("auto", "rsync", "scp")
#: Idle seconds a multiplexing master connection outlives its last command (if ``close`` never runs).
CONTROL_PERSIST_S = 60
#: Extra time over ``--connect-timeout`` for the key exchange and login before the connection is given up.
LOGIN_GRACE_S = 20

# Conservative on purpose: these names reach scp/rsync remote paths, which old servers pass through a shell.
_REMOTE_PATH_RE = re.compile(r"^(~/)?[A-Za-z0-9._+/-]+$|^~$")
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


@dataclass(frozen=True)
class DeployConfig:
    """How to deploy (built once from the command line).

    Attributes:
        remote_path: deployment root on the device, relative to the login's home unless absolute.
        port: SSH port for hosts that do not name one (``None``: ssh's default or ``~/.ssh/config``).
        identity: private key file (``ssh -i``); ``None``: the agent / ``~/.ssh`` keys.
        known_hosts: ``UserKnownHostsFile`` instead of ``~/.ssh/known_hosts``.
        accept_new_host_key: trust a host seen for the first time (``StrictHostKeyChecking=accept-new``); a
            changed key is still refused.
        connect_timeout_s: seconds to wait for a connection (``ConnectTimeout``).
        setup: create ``ROOT/venv`` and install this package's wheel there.
        system_site_packages: the venv reuses the device's system packages (numpy, OpenCV, runtimes from apt)
            and the wheel is installed without dependencies: nothing is downloaded on the device.
        extras: pip extras for the runtime (``None``: from the bundle's artifacts, ``edge`` / ``onnx``).
        wheel: install this wheel instead of one built from the source checkout.
        remote_python: the device's Python, used for the deployment helper and to create the venv.
        bench: run ``deconv-edge bench`` on the device and bring its JSON back.
        bench_args: extra arguments for the remote ``bench`` (each quoted for the remote shell).
        copy_with: ``auto`` (rsync when both ends have it, else scp), ``rsync`` or ``scp``.
        results_dir: local folder for ``HOST/deploy.json`` and ``HOST/bench.json``.
        keep_releases: releases kept on the device (the current and the previous one are always kept).
        jobs: hosts deployed in parallel.
    """

    remote_path: str = DEFAULT_REMOTE_PATH
    port: Optional[int] = None
    identity: Optional[str] = None
    known_hosts: Optional[str] = None
    accept_new_host_key: bool = False
    connect_timeout_s: float = 10.0
    setup: bool = False
    system_site_packages: bool = False
    extras: Optional[tuple] = None
    wheel: Optional[str] = None
    remote_python: str = "python3"
    bench: bool = False
    bench_args: tuple = ()
    copy_with: str = "auto"
    results_dir: str = DEFAULT_RESULTS_DIR
    keep_releases: int = 3
    jobs: int = 8

    def validate(self) -> None:
        if not _REMOTE_PATH_RE.match(self.remote_path):
            raise UserError(f"--path '{self.remote_path}': use letters, digits and . _ + - / (and a leading ~/)")
        if self.connect_timeout_s <= 0:
            raise UserError("--connect-timeout must be positive")
        if self.keep_releases < 1 or self.jobs < 1:
            raise UserError("--keep and --jobs must be at least 1")
        if self.identity and not Path(self.identity).is_file():
            raise UserError(f"--identity '{self.identity}' does not exist")
        if self.known_hosts and not Path(self.known_hosts).parent.is_dir():
            raise UserError(f"--known-hosts '{self.known_hosts}': its folder does not exist")
        if self.wheel and not (Path(self.wheel).is_file() and self.wheel.endswith(".whl")):
            raise UserError(f"--wheel '{self.wheel}' is not a .whl file")
        if self.port is not None and not 0 < self.port < 65536:
            raise UserError(f"--port {self.port} is not a port number")
        if self.copy_with not in COPY_TOOLS:
            raise UserError(f"--copy-with '{self.copy_with}' not in {COPY_TOOLS}")
        for extra in self.extras or ():
            if not re.match(r"^[A-Za-z0-9_.-]+$", extra):
                raise UserError(f"--extra '{extra}' is not an extra name (edge, onnx, legacy, ...)")


@dataclass(frozen=True)
class HostResult:
    """What happened on one host."""

    host: str
    ok: bool
    message: str = ""
    release: str = ""
    verified_by: str = ""
    device_python: str = ""
    device_machine: str = ""
    seconds: float = 0.0
    bench_json: Optional[str] = None


Log = Callable[[str], None]


# ---- ssh ----------------------------------------------------------------------------------------------------------
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
        """Run :mod:`edge_runtime.device_agent` on the device with the device's own Python."""
        source = Path(device_agent.__file__).read_text()
        proc = self.run([self.cfg.remote_python, "-", *args], input_text=source)
        if proc.returncode != 0:
            tail = _last_line(proc.stderr) or f"exit status {proc.returncode}"
            if proc.returncode == 127:
                raise DeployError(f"'{self.cfg.remote_python}' not found on the device (install python3 there, or "
                                  "name the interpreter with --python)")
            raise DeployError(f"{args[0]} on the device: {tail.removeprefix('error: ')}")
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeployError(f"{args[0]} on the device printed no result: {_last_line(proc.stderr)}") from None


def _ssh_config_value(value: str) -> str:
    # ssh splits -o values on whitespace (a list of files); quote such paths the ssh_config way.
    if '"' in value:
        raise UserError(f"path {value!r} contains a double quote, which ssh options cannot express")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# ---- the wheel for --setup ----------------------------------------------------------------------------------------
#: What a wheel of this package is built from (the packages pyproject.toml includes, and its metadata files).
_SOURCE_ITEMS = ("pyproject.toml", "README.md", "LICENSE", "train", "convert", "edge_runtime")


def build_wheel(out_dir: Path) -> Path:
    """Build ``deconv_edge-*.whl`` from the source checkout this module lives in, into ``out_dir``.

    A copy of the sources is built (never the checkout itself, which would gain ``build/`` and ``*.egg-info``);
    with the local setuptools first (offline), else in pip's isolated build environment.

    Raises:
        UserError: no source checkout here (installed from a wheel: pass ``--wheel``), or the build failed.
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise UserError(f"--setup builds a wheel from the source checkout, and {root} is not one; pass --wheel FILE")
    src = out_dir / "src"
    src.mkdir(parents=True)
    for name in _SOURCE_ITEMS:
        item = root / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        elif item.is_file():
            shutil.copy2(item, src / name)
    dist = out_dir / "dist"
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(dist)]
    proc = subprocess.run([*base, "--no-build-isolation", str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        proc = subprocess.run([*base, str(src)], capture_output=True, text=True)
    wheels = sorted(dist.glob("deconv_edge-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise UserError(f"building the wheel for --setup failed: {_last_line(proc.stderr) or proc.returncode}; "
                        "pass --wheel FILE")
    return wheels[-1]


# ---- one host -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Upload:
    bundle: Path
    bundle_name: str          # file name on the device: derived from the hash, never from user input
    wheel: Optional[Path]
    extras: tuple


def deploy_host(up: _Upload, host: Host, cfg: DeployConfig, control_path: Optional[str], log: Log) -> HostResult:
    """Deploy to one host; never raises (a failure is a :class:`HostResult` with ``ok=False``)."""
    t0 = time.monotonic()
    ssh = Ssh(host, cfg, control_path)
    facts: dict = {"host": host.label}
    try:
        ssh.open()
        info = ssh.agent("prepare", cfg.remote_path)
        facts.update(device_python=info.get("python", ""), device_machine=info.get("machine", ""))
        root = info["root"]
        if not _REMOTE_PATH_RE.match(root):
            raise DeployError(f"deployment root '{root}' on the device has unusual characters; pass --path")
        log(f"connected: Python {info['python']} on {info['machine']}, root {root}")
        has_runtime = bool(info.get("runtime"))
        if cfg.bench and not (has_runtime or cfg.setup):
            raise DeployError("--bench needs the runtime on the device: add --setup")
        use_rsync = _use_rsync(cfg.copy_with, remote_has_rsync=bool(info.get("rsync")))
        incoming = f"{root}/incoming"
        tool = ssh.copy(up.bundle, f"{incoming}/{up.bundle_name}", use_rsync)
        if up.wheel is not None:
            ssh.copy(up.wheel, f"{incoming}/{up.wheel.name}", use_rsync)
        log(f"copied with {tool}")
        if cfg.setup:
            _setup_runtime(ssh, cfg, root, f"{incoming}/{up.wheel.name}", up.extras, bool(info.get("venv")), log)
            has_runtime = True
        unpacked = ssh.agent("unpack", root, up.bundle_name)
        release, release_dir = unpacked["release"], unpacked["dir"]
        facts["release"] = release
        verified_by = "checksums"  # device_agent's check while unpacking; no runtime there for the full one
        if has_runtime:
            proc = ssh.run([f"{root}/venv/bin/deconv-edge", "verify", release_dir])
            if "invalid choice: 'verify'" in proc.stderr:
                log("the device's deconv-edge predates 'verify' (add --setup to update it); checksums only")
            elif proc.returncode != 0:
                ssh.agent("discard", root, release)
                raise DeployError(f"deconv-edge verify on the device failed: "
                                  f"{_last_line(proc.stderr) or _last_line(proc.stdout)}")
            else:
                verified_by = "deconv-edge verify"
        facts["verified_by"] = verified_by
        switched = ssh.agent("switch", root, release, str(cfg.keep_releases))
        log(f"release {release} verified ({verified_by}) and now current"
            + (f"; removed {len(switched['removed'])} old release(s)" if switched.get("removed") else ""))
        if cfg.bench:
            facts["bench_json"] = str(_bench(ssh, cfg, host, root, release, release_dir, unpacked["artifacts"], log))
        result = HostResult(ok=True, seconds=round(time.monotonic() - t0, 2), **facts)
    except DeployError as exc:
        result = HostResult(ok=False, message=str(exc), seconds=round(time.monotonic() - t0, 2), **facts)
    except Exception as exc:  # noqa: BLE001 - one host's surprise must not stop the others
        result = HostResult(ok=False, message=f"unexpected {exc.__class__.__name__}: {exc}",
                            seconds=round(time.monotonic() - t0, 2), **facts)
    finally:
        try:
            ssh.close()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        write_json_atomic(Path(cfg.results_dir) / host.label / "deploy.json", asdict(result))
    except OSError as exc:
        log(f"warning: cannot write {cfg.results_dir}: {exc}")
    return result


def _use_rsync(copy_with: str, remote_has_rsync: bool) -> bool:
    local_rsync, local_scp = shutil.which("rsync") is not None, shutil.which("scp") is not None
    if copy_with == "rsync":
        if not (local_rsync and remote_has_rsync):
            raise DeployError(f"--copy-with rsync: rsync is missing {'here' if not local_rsync else 'on the device'}")
        return True
    if copy_with == "scp" or not (local_rsync and remote_has_rsync):
        if not local_scp:
            raise DeployError("no way to copy: install rsync (on both ends) or OpenSSH's scp here")
        return False
    return True


def _setup_runtime(ssh: Ssh, cfg: DeployConfig, root: str, remote_wheel: str, extras: tuple, has_venv: bool,
                   log: Log) -> None:
    venv_python = f"{root}/venv/bin/python"
    if not has_venv:
        args = [cfg.remote_python, "-m", "venv", *(["--system-site-packages"] if cfg.system_site_packages else []),
                f"{root}/venv"]
        proc = ssh.run(args)
        if proc.returncode != 0:
            hint = (" (Debian / Raspberry Pi OS: sudo apt install python3-venv)"
                    if "ensurepip" in proc.stderr or "No module named venv" in proc.stderr else "")
            raise DeployError(f"creating the virtual environment failed: {_last_line(proc.stderr)}{hint}")
        log("created venv" + (" (with the system's packages)" if cfg.system_site_packages else ""))
    pip = [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if not cfg.system_site_packages:
        # The device's pip fetches numpy, OpenCV and the runtime (may take minutes on a Pi).
        spec = f"{remote_wheel}[{','.join(extras)}]" if extras else remote_wheel
        proc = ssh.run([*pip, spec])
        if proc.returncode != 0:
            raise DeployError(f"pip install on the device failed: {_last_line(proc.stderr)}")
    # Same version number as what may be installed already: force this build's code in, without touching deps.
    proc = ssh.run([*pip, "--no-deps", "--force-reinstall", remote_wheel])
    if proc.returncode != 0:
        raise DeployError(f"pip install on the device failed: {_last_line(proc.stderr)}")
    log(f"installed {Path(remote_wheel).name}" + (f" [{','.join(extras)}]" if extras and not
                                                  cfg.system_site_packages else ""))


def _bench(ssh: Ssh, cfg: DeployConfig, host: Host, root: str, release: str, release_dir: str,
           artifacts: Sequence[str], log: Log) -> Path:
    remote_json = f"{root}/bench/{release}.json"
    deconv = f"{root}/venv/bin/deconv-edge"
    ssh.run(["mkdir", "-p", f"{root}/bench"])
    log(f"benchmarking {len(artifacts)} artifact(s) on the device")
    proc = ssh.run([deconv, "bench", *[f"{release_dir}/{a}" for a in artifacts], "--json", remote_json,
                    *cfg.bench_args])
    if proc.returncode != 0:
        if "invalid choice: 'bench'" in proc.stderr:
            raise DeployError("the runtime on the device has no 'bench' command (this deconv-edge build "
                              "lacks the benchmark)")
        raise DeployError(f"bench on the device failed: {_last_line(proc.stderr) or _last_line(proc.stdout)}")
    fetched = ssh.run(["cat", remote_json])
    try:
        payload = json.loads(fetched.stdout)
    except ValueError:
        raise DeployError(f"bench on the device wrote no readable JSON to {remote_json}") from None
    out_dir = Path(cfg.results_dir) / host.label
    write_json_atomic(out_dir / "bench.json", payload)
    write_text_atomic(out_dir / "bench.txt", proc.stdout)
    return out_dir / "bench.json"


# ---- all hosts ----------------------------------------------------------------------------------------------------
def deploy(bundle: str | Path, hosts: Sequence[str], cfg: DeployConfig, log: Log = print) -> list[HostResult]:
    """Deploy ``bundle`` to every host in parallel; returns one result per host, in the order given.

    Raises:
        UserError: before any host is touched: bad options, a bad host name, a bundle that fails :func:`verify`,
            no ``ssh`` client.
    """
    cfg.validate()
    parsed = [parse_host(h) for h in hosts]
    if not parsed:
        raise UserError("name at least one HOST (user@host)")
    labels = [h.label for h in parsed]
    dupes = sorted({lb for lb in labels if labels.count(lb) > 1})
    if dupes:
        raise UserError(f"host given twice: {', '.join(dupes)}")
    if shutil.which("ssh") is None:
        raise UserError("deploy needs OpenSSH's ssh client (Debian: apt install openssh-client rsync)")
    bundle = Path(bundle)
    report = verify(bundle)
    if report.kind != "bundle":
        raise UserError(f"'{bundle}' is not a bundle file; make one with 'deconv-edge bundle ARTIFACT -o B.tar.gz'")
    if not report.ok:
        raise UserError(f"bundle '{bundle}' fails verification: {report.problems[0]}"
                        + (f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""))
    bundle_name = f"bundle-{sha256_file(bundle)[:12]}.tar.gz"
    with tempfile.TemporaryDirectory(prefix="dce-") as tmp:
        wheel = None
        if cfg.setup:
            if cfg.wheel:
                wheel = Path(cfg.wheel)
            else:
                log("building the deconv-edge wheel for --setup")
                wheel = build_wheel(Path(tmp) / "wheel")
            if not re.match(r"^[A-Za-z0-9._+-]+\.whl$", wheel.name):
                raise UserError(f"wheel name '{wheel.name}' has unusual characters")
        extras = tuple(cfg.extras) if cfg.extras is not None else tuple(_bundle_extras(bundle))
        up = _Upload(bundle.resolve(), bundle_name, wheel, extras)
        # Control sockets need a short path (108 bytes for a unix socket): /tmp, not a deep TMPDIR.
        control_dir = tempfile.mkdtemp(prefix="dce-ssh-", dir="/tmp" if Path("/tmp").is_dir() else None)
        try:
            lock = threading.Lock()

            def host_log(label: str) -> Log:
                def emit(msg: str) -> None:
                    with lock:
                        log(f"[{label}] {msg}")
                return emit

            def one(i: int, host: Host) -> HostResult:
                cp = f"{control_dir}/h{i}"
                result = deploy_host(up, host, cfg, cp if len(cp) < 100 else None, host_log(host.label))
                if not result.ok:
                    host_log(host.label)(f"FAILED: {result.message}")
                return result

            with ThreadPoolExecutor(max_workers=min(cfg.jobs, len(parsed))) as pool:
                results = list(pool.map(one, range(len(parsed)), parsed))
        finally:
            shutil.rmtree(control_dir, ignore_errors=True)
    return results


def _bundle_extras(bundle: Path) -> list[str]:
    import tarfile

    with tarfile.open(bundle, "r:gz") as tar:
        fh = tar.extractfile("bundle.json")
        info = json.loads(fh.read()) if fh else {}
    return runtime_extras(info.get("artifacts", []))


# ---- tables -------------------------------------------------------------------------------------------------------
def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(results: Sequence[HostResult]) -> str:
    rows = [(r.host, "ok" if r.ok else "FAILED", r.release or "-", r.verified_by or "-",
             f"{r.seconds:.1f}", r.message) for r in results]
    return format_table(("host", "status", "release", "verified by", "s", "message"), rows)


def latency_rows(host: str, payload) -> list[tuple]:
    """Table rows from one device's ``bench --json`` file (schema ``deconv-edge-bench/1``).

    Per result: frame size (WxH), the whole frame path's p50 / p90 / FPS (the model call's p50 beside it), and
    the device's board or CPU, or the error.
    """
    results = payload.get("results") if isinstance(payload, dict) else None
    device = payload.get("device") if isinstance(payload, dict) else None
    cpu = ""
    if isinstance(device, dict):
        cpu = str(device.get("board_model") or device.get("cpu_model") or "")
    rows = []
    for rec in results if isinstance(results, list) else []:
        if not isinstance(rec, dict):
            continue
        name = Path(str(rec.get("artifact"))).name if rec.get("artifact") else str(rec.get("label", "?"))
        frame = rec.get("frame") if isinstance(rec.get("frame"), dict) else {}
        model = rec.get("model") if isinstance(rec.get("model"), dict) else {}
        note = f"error: {rec['error']}" if rec.get("error") else cpu
        hw = rec.get("frame_hw")
        size = f"{hw[1]}x{hw[0]}" if isinstance(hw, list) and len(hw) == 2 else "-"
        rows.append((host, name, rec.get("backend") or "-", rec.get("threads", "-"), size, _fmt(frame.get("p50_ms")),
                     _fmt(frame.get("p90_ms")), _fmt(frame.get("fps")), _fmt(model.get("p50_ms")), note))
    return rows


def _fmt(v) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "-"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _bench_payloads(results: Sequence[HostResult]) -> list[tuple]:
    out = []
    for r in results:
        if r.bench_json and Path(r.bench_json).is_file():
            try:
                out.append((r.host, json.loads(Path(r.bench_json).read_text())))
            except ValueError:
                continue
    return out


def latency_table(results: Sequence[HostResult]) -> Optional[str]:
    """One table of every host's benchmark (``None`` when no host benchmarked)."""
    rows = [row for host, payload in _bench_payloads(results) for row in latency_rows(host, payload)]
    if not rows:
        return None
    return format_table(("host", "artifact", "backend", "threads", "frame", "p50 ms", "p90 ms", "FPS",
                         "model p50 ms", "device"), rows)


def bench_warnings(results: Sequence[HostResult]) -> list[str]:
    """``host: warning`` for each reason a device's numbers may be off (governor, throttling, load)."""
    return [f"{host}: {w}" for host, payload in _bench_payloads(results) if isinstance(payload, dict)
            for w in payload.get("warnings") or []]
