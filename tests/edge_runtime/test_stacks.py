"""The device stacks' defects, pinned: OpenCV 4.x and 5.x logging, tarfile without ``filter=`` (Debian's 3.11.2),
the Python 3.8 floor, what the TFLite interpreter really delegates, and the Jetson advice.

These run in every venv (``tests/stacks.sh`` runs them on the legacy stack, pyenv 3.8 and Debian's Python).
"""

from __future__ import annotations

import ast
import io
import os
import re
import stat
import sys
import tarfile
import types
from pathlib import Path

import pytest

from edge_runtime.agent import device_agent
from edge_runtime.ship.bundle import make_bundle

REPO = Path(__file__).resolve().parents[2]


# ---- OpenCV logging: 4.x has cv2.setLogLevel, 5.x cv2.utils.logging ------------------------------------------------
@pytest.mark.parametrize("api", ["opencv4", "opencv4-no-get", "opencv5", "neither"])
@pytest.mark.parametrize("current", [1, 4])  # FATAL (the CLI's OPENCV_LOG_LEVEL) stays FATAL; INFO goes to ERROR
def test_quiet_opencv_uses_the_api_this_build_has(monkeypatch, api, current):
    from edge_runtime.video.sources import _opencv

    calls = []
    fake = types.SimpleNamespace(utils=types.SimpleNamespace())
    if api.startswith("opencv4"):
        fake.setLogLevel = calls.append
        if api == "opencv4":
            fake.getLogLevel = lambda: current
    elif api == "opencv5":
        fake.utils.logging = types.SimpleNamespace(LOG_LEVEL_ERROR=2, setLogLevel=calls.append,
                                                   getLogLevel=lambda: current)
    monkeypatch.setattr(_opencv, "cv2", fake)
    _opencv.quiet_opencv()
    expected = {"neither": [], "opencv4-no-get": [2]}.get(api, [min(current, 2)])
    assert calls == expected


def test_quiet_opencv_on_the_installed_build():
    from edge_runtime.video.sources._opencv import quiet_opencv

    quiet_opencv()  # AttributeError on OpenCV 4.11 before the fix (the legacy stack)


# ---- unpacking without tarfile's filter= -------------------------------------------------------------------------
def _bundle(tmp_path: Path) -> Path:
    import numpy as np

    from deconv_edge_core.fsutil import sha256_file
    from deconv_edge_core.manifest import Manifest, TensorSpec

    arts = tmp_path / "arts"
    arts.mkdir()
    art = arts / "m_x2.tflite"
    art.write_bytes(np.arange(3000, dtype=np.uint16).tobytes())
    Manifest(format="tflite-fp32", runtime="tflite", scale=2, input=TensorSpec("lr", "float32", (1, None, None, 1)),
             output=TensorSpec("sr", "float32", (1, None, None, 1)), upsampler="deconv",
             artifact={"file": art.name, "sha256": sha256_file(art), "size_bytes": art.stat().st_size}).write(
        arts / (art.name + ".json"))
    out, _ = make_bundle([art], tmp_path / "b.tar.gz")
    return out


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (stat.S_IMODE(p.stat().st_mode), p.read_bytes() if p.is_file() else None,
                                             int(p.stat().st_mtime))
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def no_filter(monkeypatch):
    """This Python as if it were 3.11.2: no tarfile.data_filter."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)


def test_plain_extract_gives_what_the_data_filter_gives(tmp_path, monkeypatch):
    bundle = _bundle(tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    with monkeypatch.context() as m:
        m.delattr(tarfile, "data_filter", raising=False)
        device_agent.safe_extract(str(bundle), str(plain))
    assert device_agent.check_tree(str(plain)) == []
    if hasattr(tarfile, "data_filter"):
        filtered = tmp_path / "filtered"
        filtered.mkdir()
        device_agent.safe_extract(str(bundle), str(filtered))
        assert _tree(plain) == _tree(filtered)


def _tar_with(path: Path, *members) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for ti, data in members:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def test_plain_extract_drops_owner_and_dangerous_mode_bits(tmp_path, no_filter):
    setuid = tarfile.TarInfo("models/tool")
    setuid.size, setuid.mode, setuid.uid, setuid.gid = 2, 0o6777, 12345, 12345
    secret = tarfile.TarInfo("models/plain")
    secret.size, secret.mode = 2, 0o666
    folder = tarfile.TarInfo("models")
    folder.type, folder.mode = tarfile.DIRTYPE, 0o777
    bundle = _tar_with(tmp_path / "t.tar.gz", (folder, None), (setuid, b"#!"), (secret, b"ok"))
    dest = tmp_path / "dest"
    dest.mkdir()
    device_agent.safe_extract(str(bundle), str(dest))
    assert stat.S_IMODE((dest / "models" / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "models" / "plain").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "models").stat().st_mode) & 0o022 == 0
    assert (dest / "models" / "tool").stat().st_uid == os.getuid()  # never chowned to the archive's 12345


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink", "chardev", "fifo"])
def test_plain_extract_refuses_unsafe_members(tmp_path, no_filter, kind):
    ti = tarfile.TarInfo({"absolute": "/tmp/deconv-edge-evil", "dotdot": "models/../../evil"}.get(kind, "evil"))
    data = b"evil"
    if kind in ("absolute", "dotdot"):
        ti.size = 4
    else:
        ti.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE,
                   "fifo": tarfile.FIFOTYPE}[kind]
        ti.linkname, data = ("/etc/passwd" if kind in ("symlink", "hardlink") else ""), None
    bundle = _tar_with(tmp_path / "evil.tar.gz", (ti, data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(device_agent.AgentError, match="unsafe"):
        device_agent.safe_extract(str(bundle), str(dest))
    with tarfile.open(bundle) as tar:  # the helper on its own, without safe_members first
        with pytest.raises(device_agent.AgentError, match="unsafe"):
            device_agent.extract_plain(tar, tar.getmembers(), str(dest))
    assert os.listdir(dest) == [] and not (tmp_path / "evil").exists()


def test_plain_extract_never_writes_through_a_link_already_there(tmp_path, no_filter):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "models")  # planted before the unpack
    ti = tarfile.TarInfo("models/x")
    ti.size = 1
    bundle = _tar_with(tmp_path / "t.tar.gz", (ti, b"x"))
    with pytest.raises(device_agent.AgentError, match="outside"):
        device_agent.safe_extract(str(bundle), str(dest))
    os.remove(dest / "models")
    (dest / "models").mkdir()
    os.symlink(outside / "target", dest / "models" / "x")
    with pytest.raises(device_agent.AgentError):
        device_agent.safe_extract(str(bundle), str(dest))
    assert os.listdir(outside) == []


def test_unpack_and_verify_on_a_python_without_filter(tmp_path, no_filter):
    bundle = _bundle(tmp_path)
    root = tmp_path / "device"
    device_agent.cmd_prepare(str(root))
    os.replace(bundle, root / "incoming" / "b.tar.gz")
    release = device_agent.cmd_unpack(str(root), "b.tar.gz")
    assert release["artifacts"] == ["models/m_x2.tflite"]
    assert device_agent.cmd_check(release["dir"])["ok"]


# ---- Python 3.8 (JetPack 5) -----------------------------------------------------------------------------------------
#: 3.9+ names that must not appear in the device-side code (edge_runtime/ and the kernel it imports, core/),
#: which runs on 3.8.
PY39_NAMES = re.compile(r"functools\.cache\b|from functools import cache\b|@cache\b|\.removeprefix\(|"
                        r"\.removesuffix\(|BooleanOptionalAction|importlib\.resources\.files|\.is_relative_to\(|"
                        r"\.with_stem\(|randbytes|math\.lcm|zoneinfo|asyncio\.to_thread|cancel_futures")


def test_device_side_code_is_python38():
    offenders = []
    paths = sorted(p for folder in ("edge_runtime", "core") for p in (REPO / folder).rglob("*.py"))
    assert any(p.parts[-2:] == ("core", "errors.py") for p in paths)
    for path in paths:
        text = path.read_text()
        ast.parse(text, filename=str(path), feature_version=(3, 8))  # SyntaxError: 3.9+ syntax
        offenders += [f"{path.relative_to(REPO)}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
                      for m in PY39_NAMES.finditer(text)]
    assert offenders == []


def test_requires_python_allows_38():
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.8"', text, re.M)


def test_runtime_hint_knows_litert_has_no_38_wheels():
    from edge_runtime.stacks import runtime_wheels_hint

    assert "[onnx]" in runtime_wheels_hint((3, 8)) and "[edge]" not in runtime_wheels_hint((3, 8))
    assert "[edge]" in runtime_wheels_hint((3, 11))


# ---- what the TFLite interpreter really runs -----------------------------------------------------------------------
def test_a_bare_load_error_is_still_one_line(monkeypatch, tmp_path):
    """tflite-runtime 2.14 raises ``ValueError()`` (no message) for a file that is not a model."""
    from deconv_edge_core.errors import UserError
    from deconv_edge_core.manifest import load_manifest
    from edge_runtime.inference.backends import litert
    from edge_runtime.inference.config import RuntimeConfig
    from edge_runtime.inference.default_model import MODELS_DIR

    def bare(**kwargs):
        raise ValueError()

    monkeypatch.setattr(litert, "interpreter_module", lambda: types.SimpleNamespace(Interpreter=bare))
    manifest, artifact = load_manifest(MODELS_DIR / "fsrcnn_x2_int8.tflite")
    with pytest.raises(UserError, match=r"as a TFLite model \(ValueError\)"):
        litert.LiteRTBackend(artifact, manifest, RuntimeConfig(threads=1))


def test_describe_reports_the_delegation_read_from_the_interpreter():
    from deconv_edge_core.manifest import load_manifest
    from edge_runtime.inference.backends.litert import LiteRTBackend, interpreter_module
    from edge_runtime.inference.config import RuntimeConfig
    from edge_runtime.inference.default_model import MODELS_DIR

    mod = interpreter_module()
    if mod is None:
        pytest.skip("no TFLite runtime in this venv")
    manifest, artifact = load_manifest(MODELS_DIR / "fsrcnn_x2_int8.tflite")
    desc = LiteRTBackend(artifact, manifest, RuntimeConfig(threads=1)).describe()
    if mod.__name__.startswith("ai_edge_litert"):
        assert desc["delegates"] == ["XNNPACK (default)"] and desc["kernels"].startswith("XNNPACK ")
    else:
        # tflite-runtime 2.14: XNNPACK linked but applied to float models only; say so instead of claiming it.
        assert desc["delegates"] == [] and desc["kernels"].startswith("no delegate")
        assert "LiteRT" in desc["note"]


def test_doctor_gives_jetson_advice(monkeypatch):
    from edge_runtime import doctor

    monkeypatch.setattr(doctor, "board_model", lambda: "NVIDIA Jetson Orin Nano Developer Kit")
    text = doctor.report(doctor.checks())
    assert "fp32 ONNX" in text and "TensorRT" in text and "NVIDIA/TensorRT#1519" in text
    assert "kernels" in text


@pytest.mark.skipif(sys.platform != "linux", reason="Linux paths")
def test_doctor_runs_in_a_subprocess():
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "doctor"], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0 and "kernels" in r.stdout and "Traceback" not in r.stderr, r.stdout + r.stderr
