"""What this machine is: board, CPU, OS, governors, throttling, temperature (reads files; imports nothing).

The one platform probe: ``deconv-edge doctor`` reports from it and the benchmark's device fingerprint is built
on it (:func:`edge_runtime.bench.fingerprint.device_fingerprint`); :func:`usable_cores` is the default thread
count of every interpreter.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Optional

#: ARM CPU part numbers (``CPU part`` in /proc/cpuinfo) of common edge boards.
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE",
             "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd4b": "Cortex-A78C",
             "0x004": "NVIDIA Carmel", "0xc07": "Cortex-A7", "0xc0f": "Cortex-A15", "0xb76": "ARM1176"}


def usable_cores() -> int:
    """CPUs this process may run on: the affinity mask (containers, ``taskset``), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def read_text(path: str) -> Optional[str]:
    """A small system file's text (NULs dropped, stripped), or ``None`` where it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def cpu_model(cpuinfo: str) -> Optional[str]:
    """The CPU's name from ``/proc/cpuinfo`` text (ARM: the core names of its part numbers)."""
    for key in ("model name", "Model Name", "cpu model", "Processor"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.M)
        if m:
            return m.group(1).strip()
    parts = sorted(set(re.findall(r"^CPU part\s*:\s*(\S+)", cpuinfo, re.M)))
    if parts:
        return " + ".join(ARM_PARTS.get(p.lower(), f"ARM part {p}") for p in parts)
    return platform.processor() or None


#: The instruction-set extensions that decide int8 and fp32 speed: (``/proc/cpuinfo`` flag, name shown), in order.
#: x86: AVX2 (and FMA) for fp32; AVX-512, VNNI (``vpdpbusd``: int8 dot products) and AMX (matrix tiles) for int8.
X86_ISA = (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX512-VNNI"),
           ("avx_vnni", "AVX-VNNI"), ("amx_int8", "AMX-INT8"), ("amx_bf16", "AMX-BF16"))
#: Arm: NEON (``asimd``; ``neon`` on 32-bit kernels), int8 dot products, int8 matrix multiply, fp16 arithmetic, SVE.
ARM_ISA = (("asimd", "asimd"), ("neon", "asimd"), ("asimddp", "dotprod"), ("i8mm", "i8mm"), ("asimdhp", "fp16"),
           ("sve", "sve"))
#: Families whose absence the summary names, so "AVX2" alone reads as "and nothing faster for int8".
_KEY_ABSENT = {"x86": (("AVX-512", ("AVX-512",)), ("VNNI", ("AVX512-VNNI", "AVX-VNNI")), ("AMX", ("AMX-INT8",))),
               "arm": (("dotprod", ("dotprod",)), ("i8mm", ("i8mm",)), ("fp16", ("fp16",)))}


def _first(cpuinfo: str, key: str) -> Optional[str]:
    m = re.search(rf"^{key}\s*:\s*(.*)$", cpuinfo, re.M)
    return m.group(1).strip() if m else None


def cpu_identity(cpuinfo: str) -> dict:
    """Vendor, family, model and stepping (x86) or implementer, part, variant and revision (Arm).

    Two CPUs with the same marketing name (``AMD EPYC``) can differ in what decides int8 speed; these numbers
    tell the generations apart. Empty where ``/proc/cpuinfo`` says nothing (macOS, Windows).
    """
    out: dict = {}
    vendor = _first(cpuinfo, "vendor_id")
    if vendor or _first(cpuinfo, "cpu family"):
        out["vendor"] = vendor
        for key, name in (("cpu family", "family"), ("model", "model"), ("stepping", "stepping")):
            value = _first(cpuinfo, key)
            out[name] = int(value) if value and value.isdigit() else value
        return out
    for key, name in (("CPU implementer", "implementer"), ("CPU architecture", "architecture"),
                      ("CPU variant", "variant"), ("CPU part", "part"), ("CPU revision", "revision")):
        value = _first(cpuinfo, key)
        if value is not None:
            out[name] = value
    return out


def cpu_isa(cpuinfo: str) -> list:
    """The extensions of :data:`X86_ISA` / :data:`ARM_ISA` this CPU has, by their shown names, in order."""
    flags = set()
    for key in ("flags", "Features"):
        text = _first(cpuinfo, key)
        if text:
            flags |= set(text.split())
    table = X86_ISA if _first(cpuinfo, "flags") is not None else ARM_ISA
    return list(dict.fromkeys(name for flag, name in table if flag in flags))


def isa_summary(isa: Optional[list], arch: str) -> str:
    """``AVX2, FMA; no AVX-512, VNNI, AMX``: what the CPU has and which of the int8 accelerators it lacks."""
    if isa is None:
        return "ISA unknown"
    family = "arm" if arch.lower().startswith(("arm", "aarch")) else "x86"
    absent = [label for label, names in _KEY_ABSENT[family] if not any(n in isa for n in names)]
    have = ", ".join(isa) if isa else "none of " + "/".join(n for _, n in (X86_ISA if family == "x86" else ARM_ISA))
    return have + (f"; no {', '.join(absent)}" if absent else "")


def board_model() -> Optional[str]:
    """``Raspberry Pi 5 Model B Rev 1.0``, ``NVIDIA Jetson Orin Nano ...`` or ``None`` (no device tree)."""
    return read_text("/proc/device-tree/model") or read_text("/sys/firmware/devicetree/base/model")


def cpu_governors() -> list:
    """The CPU frequency governors in use (sorted, no repeats); empty where cpufreq is not exposed."""
    return sorted({g for g in (read_text(str(p)) for p in
                               Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")) if g})


def os_name() -> str:
    text = read_text("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', text, re.M)
    base = m.group(1) if m else platform.system()
    return f"{base} ({platform.system()} {platform.release()}, {platform.machine()})"


def throttling() -> tuple:
    """(description, throttled?) from the sources a board offers; (None, False) when none does."""
    import shutil

    if shutil.which("vcgencmd"):  # Raspberry Pi firmware: bit 0 under-voltage, 1 capped, 2 throttled (now)
        try:
            out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=3).stdout
            m = re.search(r"throttled=(0x[0-9a-fA-F]+)", out)
            if m:
                value = int(m.group(1), 16)
                return f"vcgencmd get_throttled={m.group(1)}", bool(value & 0x7)
        except (OSError, subprocess.SubprocessError):
            pass
    counts = []
    for cpu in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/thermal_throttle/core_throttle_count")):
        text = read_text(str(cpu))
        if text and text.isdigit():
            counts.append(int(text))
    if counts:
        return f"core_throttle_count={sum(counts)} since boot", sum(counts) > 0
    return None, False


def max_temp_c() -> Optional[float]:
    """The hottest thermal zone, in degrees Celsius; ``None`` where none is exposed."""
    temps = []
    for zone in Path("/sys/class/thermal").glob("thermal_zone*/temp"):
        text = read_text(str(zone))
        if text and text.lstrip("-").isdigit():
            temps.append(int(text) / 1000.0)
    return max(temps) if temps else None
