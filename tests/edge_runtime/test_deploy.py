"""bundle, verify and deploy: archives checked end to end, and deployments to a real OpenSSH server.

The "devices" are ``sshd`` processes on 127.0.0.1 (see ``sshd.py``) and temporary folders; the tests that need
them skip with a reason when ``/usr/sbin/sshd`` is not installed (``.ci/run`` installs openssh-server).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import sha256_file
from deconv_edge_core.manifest import Manifest, TensorSpec
from edge_runtime.agent import device_agent
from edge_runtime.ship.bundle import make_bundle, verify
from edge_runtime.ship.deploy import DeployConfig
from edge_runtime.ship.results import latency_rows
from edge_runtime.ship.ssh import Host, Ssh, parse_host


def _load_sshd_helper():
    # --import-mode=importlib: a sibling module is loaded by path.
    spec = importlib.util.spec_from_file_location("deconv_edge_test_sshd", Path(__file__).with_name("sshd.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sshd = _load_sshd_helper()
REPO = Path(__file__).resolve().parents[2]


def cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """``deconv-edge ARGS`` in a fresh interpreter, as a user runs it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "edge_runtime", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


# ---- artifacts ----------------------------------------------------------------------------------------------------
def fake_artifact(folder: Path, name: str = "fake_x2.tflite", size: int = 4000, seed: int = 0) -> Path:
    """Random bytes with a valid manifest: enough for bundle/verify/deploy, not for running."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    runtime = "onnx" if name.endswith(".onnx") else "tflite"
    Manifest(format=f"{runtime}-fp32", runtime=runtime, scale=2, input=TensorSpec("lr", "float32", (1, None, None, 1)),
             output=TensorSpec("sr", "float32", (1, None, None, 1)), upsampler="deconv",
             artifact={"file": name, "sha256": sha256_file(path), "size_bytes": size}).write(
        folder / (name + ".json"))
    return path


@pytest.fixture(scope="module")
def real_model(tmp_path_factory) -> Path:
    """A runnable .tflite: a shipped one, else a tiny x2 transposed convolution made with TensorFlow."""
    from edge_runtime.inference.default_model import MODELS_DIR

    shipped = sorted(p.with_suffix("") for p in MODELS_DIR.glob("*.tflite.json") if p.with_suffix("").is_file())
    if shipped:
        return shipped[0]
    tf = pytest.importorskip("tensorflow", reason="no model shipped in edge_runtime/models/ and no TensorFlow")
    from ai_edge_litert.interpreter import Interpreter

    kernel = tf.constant(np.full((4, 4, 1, 1), 0.25, np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 1], tf.float32, name="lr")])
    def upscale(x):
        shape = tf.shape(x)
        return tf.nn.conv2d_transpose(x, kernel, tf.stack([1, shape[1] * 2, shape[2] * 2, 1]), 2, padding="SAME")

    out = tmp_path_factory.mktemp("model") / "tiny_x2.tflite"
    conv = tf.lite.TFLiteConverter.from_concrete_functions([upscale.get_concrete_function()], upscale)
    out.write_bytes(conv.convert())
    it = Interpreter(model_path=str(out))
    specs = [TensorSpec(d["name"], np.dtype(d["dtype"]).name, tuple(None if v < 0 else int(v) for v in
                                                                      d["shape_signature"]))
             for d in (it.get_input_details()[0], it.get_output_details()[0])]
    Manifest(format="tflite-fp32", runtime="tflite", scale=2, input=specs[0], output=specs[1], upsampler="deconv",
             artifact={"file": out.name, "sha256": sha256_file(out), "size_bytes": out.stat().st_size},
             status="unchecked").write(out.with_name(out.name + ".json"))
    return out


def rewrite_member(src: Path, dst: Path, name: str, change) -> None:
    """Copy a bundle, passing member ``name``'s bytes through ``change`` (a tampered bundle)."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isfile() else None
            if m.name == name:
                data = change(data)
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data) if data is not None else None)


def evil_tar(path: Path, kind: str) -> Path:
    """A gzip tar with one unsafe member of the given kind, after a harmless one."""
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("README.md")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"hi"))
        ti = tarfile.TarInfo({"absolute": "/tmp/deconv-edge-evil", "dotdot": "models/../../evil"}.get(kind, "evil"))
        if kind in ("absolute", "dotdot"):
            ti.size = 4
            tar.addfile(ti, io.BytesIO(b"evil"))
            return path
        ti.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE,
                   "fifo": tarfile.FIFOTYPE}[kind]
        ti.linkname = "/etc/passwd" if kind in ("symlink", "hardlink") else ""
        tar.addfile(ti)
    return path


# ---- bundle and verify (no SSH) -----------------------------------------------------------------------------------
def test_bundle_contents_and_verify(tmp_path):
    arts = tmp_path / "arts"
    fake_artifact(arts, "a_x2.tflite", seed=1)
    fake_artifact(arts, "b_x2.onnx", seed=2)
    out = tmp_path / "b.tar.gz"
    r = cli("bundle", arts / "a_x2.tflite", arts / "b_x2.onnx", "-o", out)
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"models/a_x2.tflite", "models/a_x2.tflite.json", "models/b_x2.onnx", "models/b_x2.onnx.json",
            "SHA256SUMS", "README.md", "requirements.txt", "bundle.json"} <= names
    r = cli("verify", out)
    assert r.returncode == 0 and "2 artifact(s)" in r.stdout, r.stdout + r.stderr
    # Unpacked: the plain coreutils check works too (no Python needed on a device), and so does verify.
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    device_agent.safe_extract(str(out), str(unpacked))  # extractall(filter=) is 3.11.4+; Debian's 3.11.2 lacks it
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=unpacked, check=True)
    reqs = (unpacked / "requirements.txt").read_text()
    assert "numpy" in reqs and "ai-edge-litert" in reqs and "onnxruntime" in reqs and "tensorflow" not in reqs
    assert json.loads((unpacked / "bundle.json").read_text())["runtime_extras"] == ["edge", "onnx"]
    assert verify(unpacked).ok
    assert cli("verify", arts / "a_x2.tflite").returncode == 0


def test_verify_names_the_tampered_or_missing_file(tmp_path):
    out, _ = make_bundle([fake_artifact(tmp_path / "arts")], tmp_path / "b.tar.gz")
    flipped = tmp_path / "flipped.tar.gz"
    rewrite_member(out, flipped, "models/fake_x2.tflite", lambda d: bytes([d[0] ^ 1]) + d[1:])
    r = cli("verify", flipped)
    assert r.returncode == 1 and "models/fake_x2.tflite: sha256 mismatch" in r.stderr, r.stderr

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    r = cli("verify", truncated)
    assert r.returncode == 1 and "truncated" in r.stderr and "FAILED" in r.stderr, r.stderr

    folder = tmp_path / "unpacked"
    folder.mkdir()
    device_agent.safe_extract(str(out), str(folder))  # extractall(filter=) is 3.11.4+; Debian's 3.11.2 lacks it
    (folder / "models" / "extra.bin").write_bytes(b"x")
    (folder / "README.md").unlink()
    r = cli("verify", folder)
    assert r.returncode == 1
    assert "README.md: missing" in r.stderr and "models/extra.bin: not listed" in r.stderr, r.stderr

    r = cli("verify", tmp_path / "nope.tar.gz")
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_bundle_refuses_a_tampered_artifact_and_leaves_no_file(tmp_path):
    art = fake_artifact(tmp_path / "arts")
    art.write_bytes(art.read_bytes() + b"!")
    out = tmp_path / "b.tar.gz"
    r = cli("bundle", art, "-o", out)
    assert r.returncode == 2 and "does not match its manifest" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".b*"))
    assert cli("bundle", art, "-o", tmp_path / "b.zip").returncode == 2


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink", "chardev", "fifo"])
def test_unsafe_archives_are_refused(tmp_path, kind):
    bundle = evil_tar(tmp_path / "evil.tar.gz", kind)
    report = verify(bundle)
    assert not report.ok and "unsafe" in report.problems[0]
    root = tmp_path / "device"
    device_agent.cmd_prepare(str(root))
    shutil.copy(bundle, root / "incoming" / "evil.tar.gz")
    with pytest.raises(device_agent.AgentError, match="unsafe"):
        device_agent.cmd_unpack(str(root), "evil.tar.gz")
    assert os.listdir(root / "releases") == []
    assert not (tmp_path / "evil").exists() and not (root / "evil").exists()


def test_failed_unpack_keeps_the_current_release(tmp_path):
    """An archive cut short (an interrupted copy) never replaces or damages the current release."""
    good, _ = make_bundle([fake_artifact(tmp_path / "arts")], tmp_path / "good.tar.gz")
    root = tmp_path / "device"
    device_agent.cmd_prepare(str(root))
    shutil.copy(good, root / "incoming" / "good.tar.gz")
    first = device_agent.cmd_unpack(str(root), "good.tar.gz")["release"]
    device_agent.cmd_switch(str(root), first, 3)
    (root / "incoming" / "cut.tar.gz").write_bytes(good.read_bytes()[:-200])
    with pytest.raises(device_agent.AgentError):
        device_agent.cmd_unpack(str(root), "cut.tar.gz")
    assert os.readlink(root / "current") == f"releases/{first}"
    assert os.listdir(root / "releases") == [first]
    assert verify(root / "current").ok


def test_host_and_option_parsing():
    assert parse_host("pi@raspberrypi.local") == Host("raspberrypi.local", "pi", None, "pi@raspberrypi.local")
    h = parse_host("ssh://pi@10.0.0.2:2222")
    assert (h.user, h.hostname, h.port, h.label) == ("pi", "10.0.0.2", 2222, "pi@10.0.0.2_2222")
    h = parse_host("me@[fe80::1]:22")
    assert (h.hostname, h.port, h.copy_destination) == ("fe80::1", 22, "me@[fe80::1]")
    for bad in ("-oProxyCommand=touch /tmp/x", "pi@host;reboot", "pi@-oProxyCommand=x", "a@b:99999", "a b@c", ""):
        with pytest.raises(UserError):
            parse_host(bad)
    for path in ("a;b", "$(reboot)", "a b", "~user/x"):
        with pytest.raises(UserError):
            DeployConfig(remote_path=path).validate()
    DeployConfig(remote_path="~/deconv-edge").validate()
    rows = latency_rows("h", {"device": {"cpu_model": "cpu"}, "results": [
        {"artifact": "/x/m.tflite", "backend": "litert", "threads": 2, "frame_hw": [240, 320],
         "frame": {"p50_ms": 12.34, "p90_ms": 15.0, "fps": 81.0}, "model": {"p50_ms": 5.5}},
        {"label": "bicubic", "threads": 1, "error": "boom"}]})
    assert rows[0] == ("h", "m.tflite", "litert", 2, "320x240", "12.3", "15.0", "81.0", "5.50", "cpu")
    assert rows[1][1] == "bicubic" and rows[1][-1] == "error: boom"


# ---- deployments to real sshd -------------------------------------------------------------------------------------
_NOT_SYSTEM_PACKAGES = ("pip", "setuptools", "wheel", "pkg_resources", "_distutils_hack", "deconv_edge", "__editable__",
                        "__pycache__", "edge_runtime", "train", "convert")


def fake_system_site_packages(folder: Path) -> Path:
    """What a device's system Python would have (numpy, OpenCV, LiteRT): links to this interpreter's packages,
    minus pip/setuptools and deconv-edge itself (the deployment must bring its own)."""
    folder.mkdir(parents=True, exist_ok=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if entry.name.endswith(".pth") or entry.name.startswith(_NOT_SYSTEM_PACKAGES):
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two SSH "devices" (two sshd on two ports) sharing one known_hosts and one user key."""
    reason = sshd.sshd_missing_reason()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("ssh")
    key = sshd.keygen(folder / "user_key")
    env = {"PYTHONPATH": str(fake_system_site_packages(folder / "system-site"))}
    started = []
    try:
        for i in range(2):
            started.append(sshd.start_sshd(folder / f"sshd{i}", key, env=env, known_hosts=folder / "known_hosts",
                                           home=folder / f"home{i}"))
        yield started
    finally:
        for s in started:
            s.stop()


def ssh_args(server, timeout_s: float = 5) -> list:
    return ["--identity", server.identity, "--known-hosts", server.known_hosts, "--connect-timeout", timeout_s]


def test_remote_commands_are_quoted(servers, tmp_path):
    server = servers[0]
    cfg = DeployConfig(identity=str(server.identity), known_hosts=str(server.known_hosts), port=server.port)
    ssh = Ssh(parse_host(server.host), cfg, control_path=None)
    marker = tmp_path / "injected"
    nasty = f"a b; touch {marker} $(touch {marker}) `touch {marker}` 'q' \"d\" * ~"
    out = ssh.run(["printf", "%s\\n", nasty])
    assert out.returncode == 0 and out.stdout == nasty + "\n"
    assert not marker.exists()


def test_deploy_setup_verify_bench_round_trip(servers, real_model, tmp_path):
    server = servers[0]
    bundle, _ = make_bundle([real_model], tmp_path / "bundle.tar.gz")
    device, results = server.home / "setup", tmp_path / "results"
    t0 = time.monotonic()
    r = cli("deploy", bundle, server.host, "--port", server.port, *ssh_args(server), "--path", "~/setup",
                  "--setup", "--system-site-packages", "--python", sys.executable, "--bench",
                  "--bench-args=--runs 3 --warmup 1 --threads 1 --input-size 24x32", "--results", results,
                  timeout=240)
    elapsed = time.monotonic() - t0
    out = r.stdout + r.stderr
    label = server.host
    release = os.readlink(device / "current")
    # Installed from the wheel, verified by the device's own runtime, switched.
    assert (device / "venv" / "bin" / "deconv-edge").is_file(), out
    assert (device / release / "models" / real_model.name).is_file()
    summary = json.loads((results / label / "deploy.json").read_text())
    assert summary["release"] == Path(release).name
    verify_again = subprocess.run([str(device / "venv" / "bin" / "deconv-edge"), "verify", str(device / "current")],
                                  capture_output=True, text=True, timeout=60)
    assert verify_again.returncode == 0, verify_again.stderr
    # bench ships with this package: a device without it is a failure here, never a skip.
    assert "no 'bench' command" not in out, out
    assert r.returncode == 0, out
    assert summary["ok"] and summary["verified_by"] == "deconv-edge verify"
    payload = json.loads((results / label / "bench.json").read_text())
    assert payload["results"] and payload["results"][0]["frame"]["p50_ms"] > 0
    assert "latency on the devices" in r.stdout and real_model.name in r.stdout
    print(f"deploy --setup --bench took {elapsed:.1f} s\n{r.stdout}")


def test_two_hosts_a_closed_port_and_a_silent_one(servers, tmp_path):
    a, b = servers
    bundle, _ = make_bundle([fake_artifact(tmp_path / "arts")], tmp_path / "b.tar.gz")
    closed = f"{a.user}@127.0.0.1:{sshd.free_port()}"
    silent = socket.socket()  # accepts connections (kernel backlog) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    mute = f"{a.user}@127.0.0.1:{silent.getsockname()[1]}"
    results = tmp_path / "results"
    hosts = [f"{a.host}:{a.port}", f"ssh://{b.host}:{b.port}", closed, mute]
    t0 = time.monotonic()
    # Each server's sessions have their own HOME: two devices. The default `python3` runs the device helper.
    with silent:
        r = cli("deploy", bundle, *hosts, *ssh_args(a, timeout_s=2), "--path", "~/two-hosts", "--results", results,
                timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert time.monotonic() - t0 < 30
    assert "connection refused on port" in r.stdout and "no SSH server spoke within 2 s" in r.stdout, out
    assert "2 of 4 host(s) failed" in r.stderr, out
    for server in (a, b):
        assert json.loads((results / f"{server.host}_{server.port}" / "deploy.json").read_text())["ok"]
        assert verify(server.home / "two-hosts" / "current").ok
        assert not list((server.home / "two-hosts" / "incoming").iterdir())  # the archive is gone once unpacked
    assert not json.loads((results / closed.replace(":", "_") / "deploy.json").read_text())["ok"]

    # A second release: current moves, the previous one stays (a rollback by hand is possible), older ones go.
    device = a.home / "two-hosts"
    first = os.readlink(device / "current")
    for seed in (5, 6):
        bundle2, _ = make_bundle([fake_artifact(tmp_path / f"arts{seed}", seed=seed)], tmp_path / f"b{seed}.tar.gz")
        r = cli("deploy", bundle2, f"{a.host}:{a.port}", *ssh_args(a), "--path", "~/two-hosts", "--results",
                results, "--keep", "1")
        assert r.returncode == 0, r.stdout + r.stderr
    releases = sorted(os.listdir(device / "releases"))
    assert len(releases) == 2 and Path(first).name not in releases
    assert os.readlink(device / "current") == f"releases/{releases[-1]}"


def test_tampered_bundle_is_refused_before_any_copy(servers, tmp_path):
    server = servers[0]
    good, _ = make_bundle([fake_artifact(tmp_path / "arts")], tmp_path / "b.tar.gz")
    bad = tmp_path / "bad.tar.gz"
    rewrite_member(good, bad, "models/fake_x2.tflite.json", lambda d: d.replace(b'"scale": 2', b'"scale": 3'))
    r = cli("deploy", bad, f"{server.host}:{server.port}", *ssh_args(server), "--path", "~/tampered")
    assert r.returncode == 2 and "fails verification" in r.stderr and "models/fake_x2.tflite.json" in r.stderr
    assert not (server.home / "tampered").exists()


def test_host_keys_and_refused_login(servers, tmp_path):
    server = servers[0]
    bundle, _ = make_bundle([fake_artifact(tmp_path / "arts")], tmp_path / "b.tar.gz")
    host = f"{server.host}:{server.port}"
    known = tmp_path / "known_hosts"
    base = ["--identity", server.identity, "--known-hosts", known, "--path", "~/keys", "--results",
            tmp_path / "results"]
    r = cli("deploy", bundle, host, *base)
    assert r.returncode == 1 and "host key is not known" in r.stdout, r.stdout
    r = cli("deploy", bundle, host, *base, "--accept-new-host-key", "--copy-with", "scp")
    assert r.returncode == 0 and "copied with scp" in r.stdout, r.stdout + r.stderr
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{server.port}", "-f", str(known)], capture_output=True)
    assert found.returncode == 0  # recorded (hashed, as Debian's ssh_config says)
    # A changed key is never accepted, not even with --accept-new-host-key.
    other = sshd.keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{server.port} {other[0]} {other[1]}\n")
    r = cli("deploy", bundle, host, *base, "--accept-new-host-key")
    assert r.returncode == 1 and "CHANGED" in r.stdout, r.stdout

    stranger = sshd.keygen(tmp_path / "stranger_key")
    r = cli("deploy", bundle, host, "--identity", stranger, "--known-hosts", server.known_hosts, "--path",
            "~/keys", "--results", tmp_path / "results")
    assert r.returncode == 1 and "login refused" in r.stdout, r.stdout
