"""The emulated Raspberry Pi OS device of ``make test-aarch64`` (tests/aarch64/run.sh sets it up; skipped otherwise).

An sshd on 127.0.0.1 whose sessions see the emulated ``python3`` first on PATH and no reachable package index
(``PIP_CONFIG_FILE=/dev/null``, ``PIP_INDEX_URL`` at a closed port) is the device. ``deploy --setup --check
--bench`` must install the offline bundle there with ``pip --no-index``, pass the accuracy check with the
x86 workstation's figures, and bench; a perturbed artifact (valid sha256, wrong weights) must fail the check.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEVICE_PYTHON = os.environ.get("DCE_AARCH64_PYTHON")
BUNDLE = os.environ.get("DCE_AARCH64_BUNDLE")
DEVICE_HOME = os.environ.get("DCE_AARCH64_HOME")

pytestmark = pytest.mark.skipif(not (DEVICE_PYTHON and BUNDLE and DEVICE_HOME),
                                reason="the emulated aarch64 device is made by `make test-aarch64`")


def _sshd():
    spec = importlib.util.spec_from_file_location("deconv_edge_test_sshd",
                                                  REPO / "tests" / "edge_runtime" / "sshd.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    sshd = _sshd()
    reason = sshd.sshd_missing_reason()
    if reason:
        pytest.fail(f"make test-aarch64 needs an SSH server here: {reason}")
    folder = tmp_path_factory.mktemp("aarch64-ssh")
    key = sshd.keygen(folder / "user_key")
    bin_dir = str(Path(DEVICE_PYTHON).parent)
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null",
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    server = sshd.start_sshd(folder / "sshd", key, env=env, home=Path(DEVICE_HOME))
    try:
        yield server
    finally:
        server.stop()


def cli(*args, timeout=3000):
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "edge_runtime", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def test_offline_bundle_installs_checks_and_benches_on_the_device(device, tmp_path):
    results = tmp_path / "results"
    r = cli("deploy", BUNDLE, device.host, "--port", device.port, "--identity", device.identity, "--known-hosts",
            device.known_hosts, "--path", "~/deconv-edge", "--setup", "--check", "--bench", "--results", results,
            "--bench-args=--runs 3 --warmup 1 --threads 1 --input-size 60x80")
    out = r.stdout + r.stderr
    print(out)
    assert r.returncode == 0, out
    summary = json.loads((results / device.host / "deploy.json").read_text())
    assert summary["device_machine"] == "aarch64" and summary["device_python"] == "3.11.2", summary
    assert "from the bundle's wheels (pip --no-index)" in out
    assert summary["accuracy"].startswith("ok 3/3"), summary
    bench = json.loads((results / device.host / "bench.json").read_text())
    assert bench["results"] and all(rec.get("frame", {}).get("p50_ms") for rec in bench["results"]), bench
    # The emulated Arm device reproduces the x86 workstation's outputs (the refs were made here on x86).
    root = Path(DEVICE_HOME) / "deconv-edge"
    acc = json.loads(next((root / "bench").glob("accuracy-*.json")).read_text())
    assert acc["passed"] and len(acc["results"]) == 3
    for rec in acc["results"]:
        print(f"device vs x86: {rec['artifact']}: max |diff| {rec['vs_workstation_max']}, PSNR {rec['psnr_db']} "
              f"(x86 {rec['expected_psnr_db']})")
        assert rec["vs_workstation_max"] <= 1 / 255 + 1e-6, rec


def test_a_perturbed_artifact_fails_the_check_on_the_device(device, tmp_path):
    """Valid sha256, wrong weights: the default x2 model's file replaced by the small x2 model's, every hash redone."""
    from deconv_edge_core.fsutil import sha256_file
    from edge_runtime.agent.device_agent import SUMS_FILE

    root = Path(DEVICE_HOME) / "deconv-edge"
    folder = tmp_path / "perturbed"
    shutil.copytree(root / "current", folder, symlinks=False)
    victim, impostor = folder / "models" / "sesr_x2_int8.tflite", folder / "models" / "fsrcnn-s_x2_int8.tflite"
    shutil.copy(impostor, victim)
    manifest_path = victim.with_name(victim.name + ".json")
    manifest = json.loads(manifest_path.read_text())
    manifest["artifact"].update(sha256=sha256_file(victim), size_bytes=victim.stat().st_size)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    lines = []
    for line in (folder / SUMS_FILE).read_text().splitlines():
        name = line.split(None, 1)[1].strip()
        lines.append(f"{sha256_file(folder / name)}  {name}")
    (folder / SUMS_FILE).write_text("\n".join(lines) + "\n")
    device_cli = root / "venv" / "bin" / "deconv-edge"
    env = dict(os.environ, PIP_CONFIG_FILE="/dev/null")
    ok = subprocess.run([str(device_cli), "verify", str(folder)], capture_output=True, text=True, env=env,
                        timeout=600)
    assert ok.returncode == 0, ok.stderr  # every checksum and manifest matches ...
    r = subprocess.run([str(device_cli), "verify", "--accuracy", str(folder)], capture_output=True, text=True,
                       env=env, timeout=1200)
    print(r.stdout + r.stderr)
    assert r.returncode == 1, r.stdout + r.stderr  # ... and the numbers do not
    assert "FAILED accuracy: sesr_x2_int8.tflite" in r.stderr and "Traceback" not in r.stderr
    assert "accuracy ok: sesr_x2_fp32.onnx" in r.stdout
