"""Wheelhouses for offline devices: ``bundle --platform linux-aarch64 --python 3.11`` puts every wheel the device
needs (this package and its runtime) in the bundle, and ``deploy --setup`` installs them with ``pip --no-index``.

The wheels are fetched on the workstation with ``pip download`` for the *device's* platform and Python (pip's
own index and configuration; nothing is installed here, and nothing is ever fetched on the device). This
package's own wheel comes from :func:`edge_runtime.ship.wheelhouse.wheel_for_setup` (built from the checkout, or
repacked from the installed package) unless ``bundle --wheel`` names one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from deconv_edge_core.errors import UserError

WHEELS_DIR = "wheels"
#: ``--platform`` choices: the machine name ``platform.machine()`` reports on the device, per pip platform.
PLATFORMS = {"linux-aarch64": "aarch64", "linux-x86_64": "x86_64", "linux-armv7l": "armv7l"}
#: Default glibc of the device: Raspberry Pi OS Bookworm / Debian 12 (2.36). JetPack 5 is 2.31, JetPack 6 2.35.
DEFAULT_GLIBC = "2.36"
#: The oldest manylinux tag (manylinux2014).
MIN_GLIBC_MINOR = 17


@dataclass(frozen=True)
class Target:
    """A device's platform and Python, as the wheelhouse is made for them."""

    platform: str      # "linux-aarch64"
    python: str        # "3.11"
    glibc: str = DEFAULT_GLIBC

    @property
    def machine(self) -> str:
        return PLATFORMS[self.platform]

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def pip_platform_args(self) -> list[str]:
        """Every manylinux tag the device accepts, oldest to newest.

        pip takes only the tags it is given: with ``manylinux_2_17`` alone it silently picks ai-edge-litert 1.4.0,
        because the 2.x aarch64 wheels are tagged ``manylinux_2_27``. ``linux_ARCH`` (piwheels-style builds)
        comes last, for indexes that have them.
        """
        top = int(self.glibc.split(".")[1])
        args: list[str] = []
        for minor in range(MIN_GLIBC_MINOR, top + 1):
            args += ["--platform", f"manylinux_2_{minor}_{self.machine}"]
        if self.machine == "x86_64":
            args += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64"]
        return args + ["--platform", f"linux_{self.machine}"]

    def to_dict(self) -> dict:
        return {"platform": self.platform, "python": self.python, "glibc": self.glibc}


def parse_target(platform: Optional[str], python: Optional[str], glibc: Optional[str] = None) -> Optional[Target]:
    """``--platform`` / ``--python`` / ``--glibc`` → a :class:`Target` (``None`` when no ``--platform``).

    Raises:
        UserError: an unknown platform, a malformed version, or ``--python``/``--glibc`` without ``--platform``.
    """
    if platform is None:
        if python or glibc:
            raise UserError("--python and --glibc describe the device of --platform; add --platform linux-aarch64 "
                            "(or linux-x86_64, linux-armv7l)")
        return None
    if platform not in PLATFORMS:
        raise UserError(f"--platform '{platform}': use one of {', '.join(PLATFORMS)}")
    python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    if not re.match(r"^3\.\d{1,2}$", python):
        raise UserError(f"--python '{python}': give the device's Python as 3.MINOR, e.g. 3.11")
    glibc = glibc or DEFAULT_GLIBC
    if not re.match(r"^2\.\d{2}$", glibc) or int(glibc.split(".")[1]) < MIN_GLIBC_MINOR:
        raise UserError(f"--glibc '{glibc}': give the device's glibc as 2.MINOR (2.17 or newer), e.g. 2.36")
    return Target(platform, python, glibc)


def download(target: Target, requirement: str, dest: Path, find_links: Sequence[Path] = ()) -> list[Path]:
    """``pip download`` the wheels of ``requirement`` (a wheel file with extras) for ``target`` into ``dest``.

    Raises:
        UserError: pip found no wheel for some package on this platform (its last line says which).
    """
    dest.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--dest", str(dest),
            "--only-binary=:all:", "--implementation", "cp", "--python-version", target.python,
            "--abi", target.abi, *target.pip_platform_args()]
    for folder in find_links:
        argv += ["--find-links", str(folder)]
    proc = subprocess.run([*argv, requirement], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines()
                 if ln.strip() and not ln.startswith("WARNING: Location")]
        why = next((ln for ln in lines if "No matching distribution" in ln), lines[-1] if lines else "")
        raise UserError(f"no wheels for {target.platform} / Python {target.python}: {why[:200]} (piwheels or "
                        "another index in pip.conf may have them)")
    return sorted(dest.glob("*.whl"))


def check_device(info: dict, device_python: str, device_machine: str) -> Optional[str]:
    """Why a bundle's wheelhouse (``bundle.json``'s ``wheelhouse``) cannot install on a device, or ``None``."""
    target = info.get("target") or {}
    want_py, want_machine = str(target.get("python", "")), PLATFORMS.get(str(target.get("platform", "")), "?")
    have_py = ".".join(device_python.split(".")[:2])
    if have_py != want_py or device_machine != want_machine:
        return (f"the bundle's wheels are for {target.get('platform')} / Python {want_py}, and the device has "
                f"Python {have_py} on {device_machine}: bundle again with --platform linux-{device_machine} "
                f"--python {have_py}")
    return None


__all__ = ["WHEELS_DIR", "PLATFORMS", "Target", "parse_target", "download", "check_device"]
