"""``deconv-edge deploy``: put a bundle on one or many devices over SSH, check it there, switch to it, bench it.

Per host, over one multiplexed OpenSSH connection (the system's ``ssh``; ``rsync`` for the copy, else ``scp``):

1. connect (``BatchMode``: a refused login fails at once instead of asking for a password);
2. ``prepare``: make the deployment root, learn the device's Python and whether it has rsync;
3. copy the bundle (and, with ``--setup``, a wheel of this package) to ``ROOT/incoming/``;
4. ``--setup``: a virtual environment ``ROOT/venv`` and the wheel installed in it (the device's pip fetches
   the requirements, or reuses the system's packages with ``--system-site-packages``);
5. unpack beside the previous release and check every checksum (:mod:`edge_runtime.agent.device_agent`), then
   ``deconv-edge verify`` it with the device's own runtime when there is one;
6. switch ``ROOT/current`` to it (one atomic rename: a copy or unpack cut short leaves the previous release
   current and intact);
7. ``--bench``: ``deconv-edge bench`` on the device; its JSON comes back to ``deploy-results/HOST/``.

Security: host keys are checked as ssh always does (``--accept-new-host-key`` relaxes that to ``accept-new``,
never further). Every local command is an argument list (:mod:`.ssh`); the tables it prints are
:mod:`.results`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import sha256_file, write_json_atomic, write_text_atomic

from . import device_steps as steps
from .bundle import runtime_extras, verify
from .ssh import DeployError, Host, Ssh, last_line, parse_host

DEFAULT_REMOTE_PATH = "deconv-edge"
DEFAULT_RESULTS_DIR = "deploy-results"
COPY_TOOLS = ("auto", "rsync", "scp")

# Conservative on purpose: these names reach scp/rsync remote paths, which old servers pass through a shell.
_REMOTE_PATH_RE = re.compile(r"^(~/)?[A-Za-z0-9._+/-]+$|^~$")


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
        setup: create ``ROOT/venv`` and install this package's wheel there (built from the checkout, or
            repacked from the installed package: :mod:`edge_runtime.ship.wheelhouse`).
        system_site_packages: the venv reuses the device's system packages (numpy, OpenCV, runtimes from apt)
            and the wheel is installed without dependencies: nothing is downloaded on the device.
        extras: pip extras for the runtime (``None``: from the bundle's artifacts, ``edge`` / ``onnx``).
        wheel: install this wheel instead of one made from the running package.
        remote_python: the device's Python, used for the deployment helper and to create the venv.
        bench: run ``deconv-edge bench`` on the device and bring its JSON back.
        bench_args: extra arguments for the remote ``bench`` (each quoted for the remote shell).
        check: run ``deconv-edge verify --accuracy`` on the device (the bundle's reference pictures, with the
            backend the device uses) before switching; a miss keeps the previous release current.
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
    check: bool = False
    copy_with: str = "auto"
    results_dir: str = DEFAULT_RESULTS_DIR
    keep_releases: int = 3
    jobs: int = 8

    def validate(self) -> None:
        if not _REMOTE_PATH_RE.match(self.remote_path):
            raise UserError(f"--path '{self.remote_path}': use letters, digits and . _ + - / (and a leading ~/)")
        if not self.connect_timeout_s > 0 or self.connect_timeout_s == float("inf"):  # refuses nan too
            raise UserError("--connect-timeout must be a positive, finite number of seconds")
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
    accuracy: str = ""


Log = Callable[[str], None]


# ---- one host -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Upload:
    bundle: Path
    bundle_name: str          # file name on the device: derived from the hash, never from user input
    wheel: Optional[Path]
    extras: tuple
    #: ``bundle.json``'s ``wheelhouse`` (the bundle carries its wheels: --setup installs with pip --no-index)
    wheelhouse: Optional[dict] = None


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
        offline = cfg.setup and up.wheelhouse is not None and up.wheel is None
        if offline:
            from .platform_wheels import check_device

            mismatch = check_device(up.wheelhouse, str(info.get("python", "")), str(info.get("machine", "")))
            if mismatch:
                raise DeployError(mismatch)
        use_rsync = _use_rsync(cfg.copy_with, remote_has_rsync=bool(info.get("rsync")))
        incoming = f"{root}/incoming"
        tool = ssh.copy(up.bundle, f"{incoming}/{up.bundle_name}", use_rsync)
        if up.wheel is not None:
            ssh.copy(up.wheel, f"{incoming}/{up.wheel.name}", use_rsync)
        log(f"copied with {tool}")
        if cfg.setup and not offline:
            _setup_runtime(ssh, cfg, root, f"{incoming}/{up.wheel.name}", up.extras, bool(info.get("venv")), log)
            has_runtime = True
        unpacked = ssh.agent("unpack", root, up.bundle_name)
        release, release_dir = unpacked["release"], unpacked["dir"]
        facts["release"] = release
        if offline:
            # The release's own wheels/: nothing is fetched on the device (field devices are often offline).
            wheels = f"{release_dir}/wheels"
            try:
                _setup_runtime(ssh, cfg, root, f"{wheels}/{up.wheelhouse['wheel']}", up.extras,
                               bool(info.get("venv")), log, find_links=wheels)
            except DeployError:
                ssh.agent("discard", root, release)
                raise
            has_runtime = True
        verified_by = "checksums"  # device_agent's check while unpacking; no runtime there for the full one
        if has_runtime:
            proc = ssh.run(steps.verify_argv(steps.DeviceLayout(root), release_dir))
            if steps.MISSING_VERIFY in proc.stderr:
                log("the device's deconv-edge predates 'verify' (add --setup to update it); checksums only")
            elif proc.returncode != 0:
                ssh.agent("discard", root, release)
                raise DeployError(f"deconv-edge verify on the device failed: "
                                  f"{last_line(proc.stderr) or last_line(proc.stdout)}")
            else:
                verified_by = "deconv-edge verify"
        facts["verified_by"] = verified_by
        if cfg.check:
            if not has_runtime:
                raise DeployError("--check needs the runtime on the device: add --setup")
            facts["accuracy"] = _check_accuracy(ssh, root, release, release_dir, log)
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
                   log: Log, find_links: Optional[str] = None) -> None:
    layout = steps.DeviceLayout(root)
    if not has_venv:
        proc = ssh.run(steps.venv_argv(cfg.remote_python, layout, cfg.system_site_packages))
        if proc.returncode != 0:
            hint = (" (Debian / Raspberry Pi OS: sudo apt install python3-venv)"
                    if "ensurepip" in proc.stderr or "No module named venv" in proc.stderr else "")
            raise DeployError(f"creating the virtual environment failed: {last_line(proc.stderr)}{hint}")
        log("created venv" + (" (with the system's packages)" if cfg.system_site_packages else ""))
    if not cfg.system_site_packages:
        # The device's pip fetches numpy, OpenCV and the runtime (may take minutes on a Pi).
        proc = ssh.run(steps.pip_install_argv(layout, remote_wheel, extras, find_links))
        if proc.returncode != 0:
            raise DeployError(f"pip install on the device failed: {last_line(proc.stderr)}")
    # Same version number as what may be installed already: force this build's code in, without touching deps.
    proc = ssh.run(steps.pip_reinstall_argv(layout, remote_wheel, find_links))
    if proc.returncode != 0:
        raise DeployError(f"pip install on the device failed: {last_line(proc.stderr)}")
    log(f"installed {Path(remote_wheel).name}" + (f" [{','.join(extras)}]" if extras and not
                                                  cfg.system_site_packages else "")
        + (" from the bundle's wheels (pip --no-index)" if find_links else ""))


def _check_accuracy(ssh: Ssh, root: str, release: str, release_dir: str, log: Log) -> str:
    """``deconv-edge verify --accuracy`` on the device; a miss discards the release (the current one stays)."""
    remote_json = f"{root}/bench/accuracy-{release}.json"
    ssh.run(["mkdir", "-p", f"{root}/bench"])
    proc = ssh.run([f"{root}/venv/bin/deconv-edge", "verify", "--accuracy", release_dir, "--json", remote_json])
    if "unrecognized arguments: --accuracy" in proc.stderr:
        raise DeployError("the device's deconv-edge predates 'verify --accuracy' (add --setup to update it)")
    fetched = ssh.run(["cat", remote_json])
    try:
        results = json.loads(fetched.stdout)["results"]
    except (ValueError, KeyError, TypeError):
        results = []
    if proc.returncode != 0 or not results:
        ssh.agent("discard", root, release)
        raise DeployError(f"accuracy check on the device failed: {last_line(proc.stderr) or last_line(proc.stdout)}")
    worst = min((r["psnr_db"] for r in results if isinstance(r.get("psnr_db"), (int, float))), default=None)
    summary = f"ok {len(results)}/{len(results)}" + (f", min PSNR {worst:.2f} dB" if worst is not None and
                                                      worst != float("inf") else ", identical")
    log(f"accuracy on the device: {summary}")
    return summary


def _bench(ssh: Ssh, cfg: DeployConfig, host: Host, root: str, release: str, release_dir: str,
           artifacts: Sequence[str], log: Log) -> Path:
    layout = steps.DeviceLayout(root)
    remote_json = layout.bench_json(release)
    ssh.run(["mkdir", "-p", layout.bench_dir])
    log(f"benchmarking {len(artifacts)} artifact(s) on the device")
    proc = ssh.run(steps.bench_argv(layout, [f"{release_dir}/{a}" for a in artifacts], remote_json, cfg.bench_args))
    if proc.returncode != 0:
        if steps.MISSING_BENCH in proc.stderr:
            raise DeployError("the runtime on the device has no 'bench' command (this deconv-edge build "
                              "lacks the benchmark)")
        raise DeployError(f"bench on the device failed: {last_line(proc.stderr) or last_line(proc.stdout)}")
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
def prepare_upload(bundle: str | Path, cfg: DeployConfig, work_dir: Path, log: Log = print,
                   use_wheelhouse: bool = False) -> _Upload:
    """What every host gets, checked here before any host is touched (``deploy`` and ``deploy --ansible``).

    Args:
        bundle: from ``deconv-edge bundle``; it must pass :func:`~edge_runtime.ship.bundle.verify`.
        cfg: the deployment options (``setup``, ``wheel`` and ``extras`` matter here).
        work_dir: an existing folder for a wheel built for ``--setup`` (it must outlive the upload).
        log: one line per step.
        use_wheelhouse: ``--setup`` installs from an offline bundle's own ``wheels/`` (``deploy``; the Ansible
            role still installs this package's wheel with the device's pip).

    Raises:
        UserError: not a bundle, a bundle that fails verification, or no wheel for ``--setup``.
    """
    bundle = Path(bundle)
    report = verify(bundle)
    if report.kind != "bundle":
        raise UserError(f"'{bundle}' is not a bundle file; make one with 'deconv-edge bundle ARTIFACT -o B.tar.gz'")
    if not report.ok:
        raise UserError(f"bundle '{bundle}' fails verification: {report.problems[0]}"
                        + (f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""))
    bundle_name = steps.bundle_file_name(steps.short_hash(sha256_file(bundle)))
    wheel = None
    wheelhouse = _bundle_info(bundle).get("wheelhouse") if use_wheelhouse else None
    if cfg.setup and wheelhouse and not cfg.wheel:
        log(f"--setup installs from the bundle's wheels ({wheelhouse['target']['platform']}, Python "
            f"{wheelhouse['target']['python']}) with pip --no-index")
    elif cfg.setup:
        if cfg.wheel:
            wheel = Path(cfg.wheel)
        else:
            from .wheelhouse import wheel_for_setup

            wheel, how = wheel_for_setup(work_dir / "wheel")
            log(f"deconv-edge wheel for --setup: {wheel.name} ({how})")
        if not re.match(r"^[A-Za-z0-9._+-]+\.whl$", wheel.name):
            raise UserError(f"wheel name '{wheel.name}' has unusual characters")
    extras = tuple(cfg.extras) if cfg.extras is not None else tuple(_bundle_extras(bundle))
    return _Upload(bundle.resolve(), bundle_name, wheel, extras, wheelhouse)


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
    with tempfile.TemporaryDirectory(prefix="dce-") as tmp:
        up = prepare_upload(bundle, cfg, Path(tmp), log, use_wheelhouse=True)
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


def _bundle_info(bundle: Path) -> dict:
    import tarfile

    with tarfile.open(bundle, "r:gz") as tar:
        fh = tar.extractfile("bundle.json")
        return json.loads(fh.read()) if fh else {}


def _bundle_extras(bundle: Path) -> list[str]:
    info = _bundle_info(bundle)
    if info.get("wheelhouse") and "runtime_extras" in info:
        return list(info["runtime_extras"])  # what the wheelhouse was made for (bundle --extra)
    return runtime_extras(info.get("artifacts", []))
