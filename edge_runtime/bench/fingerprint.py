"""The device fingerprint: where a benchmark's numbers were taken, and why they may not be representative.

Built on :mod:`edge_runtime.machine` (reads files; imports nothing).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..machine import (
    board_model,
    cpu_governors,
    cpu_identity,
    cpu_isa,
    cpu_model,
    isa_summary,
    max_temp_c,
    os_name,
    read_text,
    usable_cores,
)
from ..machine import throttling as machine_throttling

#: Python distributions whose versions go into the fingerprint (looked up, never imported).
_DISTRIBUTIONS = ("numpy", "opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
                  "opencv-contrib-python", "ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu",
                  "onnxruntime-openvino")


@dataclass(frozen=True)
class DeviceInfo:
    """Where the numbers were taken.

    Attributes:
        cpu_id: family/model/stepping (x86) or implementer/part/variant (Arm): the CPU generation, which a
            marketing name such as "AMD EPYC" does not tell.
        isa: the instruction-set extensions that decide int8 and fp32 speed (AVX2, AVX-512, VNNI, AMX; asimd,
            dotprod, i8mm, fp16), ``None`` where the OS does not list them. A speed figure holds for this kind.
        machine: the architecture (``x86_64``, ``aarch64``).
    """

    cpu_model: Optional[str]
    cpu_id: dict
    isa: Optional[list]
    machine: str
    cores_logical: int
    cores_usable: int
    cpu_max_mhz: Optional[float]
    governor: Optional[str]
    board_model: Optional[str]
    os: str
    python: str
    versions: dict
    throttling: Optional[str]
    throttled: bool
    max_temp_c: Optional[float]
    load_avg_1m: Optional[float]
    hostname: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def warnings(self) -> list:
        """Reasons the numbers may not be representative."""
        out = []
        if self.governor is None:
            out.append("CPU frequency governor unknown (no cpufreq here, e.g. a VM or container): clock scaling "
                       "may change the numbers")
        elif self.governor != "performance":
            out.append(f"CPU governor is '{self.governor}', not 'performance': clocks ramp up and down during the "
                       "run (sudo cpupower frequency-set -g performance)")
        if self.throttled:
            out.append(f"the CPU reports throttling ({self.throttling}): cool or power the board better")
        if self.load_avg_1m is not None and self.load_avg_1m > 0.5 * self.cores_usable:
            out.append(f"the machine is busy (load average {self.load_avg_1m:.1f} on {self.cores_usable} cores): "
                       "expect noisy numbers; ratios between interleaved cases stay comparable")
        return out

    def cpu_kind(self) -> str:
        """The CPU as a speed claim needs it: name, generation and ISA, e.g. ``AMD EPYC (family 25 model 1;
        AVX2, FMA; no AVX-512, VNNI, AMX)``."""
        ident = self.cpu_id or {}
        if "family" in ident:
            gen = f"family {ident['family']} model {ident.get('model')}"
        elif "part" in ident:
            gen = f"part {ident['part']} r{ident.get('variant', '?')}p{ident.get('revision', '?')}"
        else:
            gen = ""
        detail = "; ".join(p for p in (gen, isa_summary(self.isa, self.machine)) if p)
        return f"{self.cpu_model or 'unknown CPU'} ({detail})"

    def short(self) -> str:
        """One line: board, CPU kind (generation and ISA), cores, OS."""
        what = self.cpu_kind()
        if self.board_model:
            what = f"{self.board_model}, {what}"
        return f"{what}, {self.cores_usable}/{self.cores_logical} cores, {self.os}"


def device_fingerprint() -> DeviceInfo:
    """CPU, cores, governor, board, OS and library versions of this machine (reads files; imports nothing)."""
    from importlib import metadata

    cpuinfo = read_text("/proc/cpuinfo") or ""
    govs = cpu_governors()
    max_khz = [int(t) for t in (read_text(str(p)) for p in
                                Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq"))
               if t and t.isdigit()]
    board = board_model()
    if not board:
        m = re.search(r"^Model\s*:\s*(.+)$", cpuinfo, re.M)
        board = m.group(1).strip() if m else None
    if not board:
        vendor, product = read_text("/sys/class/dmi/id/sys_vendor"), read_text("/sys/class/dmi/id/product_name")
        board = " ".join(p for p in (vendor, product) if p) or None
    versions = {}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    throttling, throttled = machine_throttling()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return DeviceInfo(
        cpu_model=cpu_model(cpuinfo), cpu_id=cpu_identity(cpuinfo), isa=cpu_isa(cpuinfo) if cpuinfo else None,
        machine=platform.machine(), cores_logical=os.cpu_count() or 1, cores_usable=usable_cores(),
        cpu_max_mhz=max(max_khz) / 1000.0 if max_khz else None, governor=",".join(govs) if govs else None,
        board_model=board, os=os_name(), python=platform.python_version(), versions=versions,
        throttling=throttling, throttled=throttled, max_temp_c=max_temp_c(), load_avg_1m=load,
        hostname=platform.node())
