"""The commands a deployment runs on a device, as argument lists: one source for ``deconv-edge deploy`` (sent over
its own SSH connection) and for the Ansible role that ``deploy --ansible`` writes.

Every function returns an argv list, never a shell string. The arguments are only placed, never parsed, so the
Ansible writer can pass Jinja placeholders (``"{{ dce_root }}"``) or list markers and get the same command with
the values filled in on each device at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from edge_runtime.agent.device_agent import RELEASE_HASH_CHARS

BENCH_DIR = "bench"


@dataclass(frozen=True)
class DeviceLayout:
    """Paths under a deployment root on the device (see :mod:`edge_runtime.agent.device_agent`).

    Attributes:
        root: the deployment root, as the device agent's ``prepare`` printed it (absolute).
    """

    root: str

    @property
    def incoming(self) -> str:
        """Where bundles and wheels are copied before anything is unpacked."""
        return f"{self.root}/incoming"

    @property
    def current(self) -> str:
        """The symlink to the active release."""
        return f"{self.root}/current"

    @property
    def venv(self) -> str:
        """The runtime's virtual environment (``--setup``)."""
        return f"{self.root}/venv"

    @property
    def venv_python(self) -> str:
        return f"{self.venv}/bin/python"

    @property
    def deconv_edge(self) -> str:
        """The device's ``deconv-edge`` command (present once the runtime is set up)."""
        return f"{self.venv}/bin/deconv-edge"

    @property
    def bench_dir(self) -> str:
        return f"{self.root}/{BENCH_DIR}"

    def incoming_file(self, name: str) -> str:
        return f"{self.incoming}/{name}"

    def bench_json(self, release: str) -> str:
        """Where the device's ``bench --json`` of ``release`` is written."""
        return f"{self.bench_dir}/{release}.json"


def short_hash(sha256_hex: str) -> str:
    """The part of a bundle's sha256 that names it on the device (and ends its release name)."""
    return sha256_hex[:RELEASE_HASH_CHARS]


def bundle_file_name(short: str) -> str:
    """The bundle's file name in ``incoming/``: derived from its hash, never from user input."""
    return f"bundle-{short}.tar.gz"


def agent_argv(python: str, command: str, *args: str) -> list:
    """The device agent (its source on stdin) run by the device's own Python: ``python - COMMAND ARGS``."""
    return [python, "-", command, *args]


def verify_argv(layout: DeviceLayout, release_dir: str) -> list:
    """``deconv-edge verify`` of an unpacked release with the device's runtime."""
    return [layout.deconv_edge, "verify", release_dir]


def venv_argv(python: str, layout: DeviceLayout, system_site_packages: bool) -> list:
    """Create the runtime's virtual environment."""
    return [python, "-m", "venv", *(["--system-site-packages"] if system_site_packages else []), layout.venv]


def _pip(layout: DeviceLayout) -> list:
    return [layout.venv_python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]


def pip_install_argv(layout: DeviceLayout, wheel: str, extras: Sequence[str], find_links: Optional[str] = None) -> list:
    """Install the wheel and its requirements: the device's pip fetches them, or, with ``find_links`` (an
    offline bundle's ``wheels/``), takes them from there with ``--no-index``."""
    offline = ["--no-index", "--find-links", find_links] if find_links else []
    return [*_pip(layout), *offline, f"{wheel}[{','.join(extras)}]" if extras else wheel]


def pip_reinstall_argv(layout: DeviceLayout, wheel: str, find_links: Optional[str] = None) -> list:
    """Force this build's code in (the version number may equal the installed one), dependencies untouched."""
    offline = ["--no-index", "--find-links", find_links] if find_links else []
    return [*_pip(layout), *offline, "--no-deps", "--force-reinstall", wheel]


def bench_argv(layout: DeviceLayout, artifact_paths: Sequence, remote_json: str, bench_args: Sequence) -> list:
    """``deconv-edge bench`` of a release's artifacts on the device, its JSON to ``remote_json``."""
    return [layout.deconv_edge, "bench", *artifact_paths, "--json", remote_json, *bench_args]


#: What a device's ``deconv-edge`` prints when it predates a command (deploy falls back or explains).
MISSING_VERIFY = "invalid choice: 'verify'"
MISSING_BENCH = "invalid choice: 'bench'"
