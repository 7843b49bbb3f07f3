"""``deploy --ansible DIR``: the playbook it writes, run by a real ``ansible-playbook`` against a real sshd.

The "device" is an ``sshd`` on 127.0.0.1 with its own ``HOME`` (``sshd.py``); ``ansible-core`` comes from the
``dev`` extra. The tests that run a playbook skip with a reason when ``ansible-playbook`` or ``sshd`` is missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from edge_runtime.agent import device_agent
from edge_runtime.ship.ansible_yaml import ListVar, to_yaml
from edge_runtime.ship.ansible_yaml import argv_template as _argv
from edge_runtime.ship.bundle import make_bundle, verify

from . import test_deploy
from .test_deploy import cli, fake_artifact, fake_system_site_packages, sshd

real_model = test_deploy.real_model  # the fixture: a shipped model, else a tiny one made with TensorFlow

ROLE = "deconv_edge"


def ansible_playbook() -> str | None:
    here = Path(sys.executable).with_name("ansible-playbook")
    return str(here) if here.is_file() else shutil.which("ansible-playbook")


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """One SSH "device": an sshd on 127.0.0.1 whose sessions see a fake system site-packages and their own HOME."""
    reason = sshd.sshd_missing_reason() or (None if ansible_playbook() else
                                           "ansible-playbook is not installed (pip install ansible-core: the dev extra)")
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("ansible-ssh")
    key = sshd.keygen(folder / "user_key")
    env = {"PYTHONPATH": str(fake_system_site_packages(folder / "system-site"))}
    server = sshd.start_sshd(folder / "sshd", key, env=env, known_hosts=folder / "known_hosts", home=folder / "home")
    try:
        yield server
    finally:
        server.stop()


def play(folder: Path, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``ansible-playbook -i inventory.yml playbook.yml`` from ``folder``, as the README says; ~/.ansible untouched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    control = tempfile.mkdtemp(prefix="dce-acp-", dir="/tmp")  # a unix socket path must stay short
    env.update(ANSIBLE_HOME=str(folder.parent / "ansible-home"), ANSIBLE_SSH_CONTROL_PATH_DIR=control,
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    try:
        return subprocess.run([ansible_playbook(), "-i", "inventory.yml", "playbook.yml", *extra], cwd=folder,
                              capture_output=True, text=True, timeout=timeout, env=env)
    finally:
        shutil.rmtree(control, ignore_errors=True)


def task_statuses(out: str, task: str) -> list:
    """``ok`` / ``changed`` / ``skipping`` / ``fatal`` ... of every run of the role's task named ``task``."""
    found = []
    for block in re.split(r"^TASK \[", out, flags=re.M)[1:]:
        if block.startswith(f"{ROLE} : {task}]"):
            found += re.findall(r"^(ok|changed|skipping|failed|fatal): \[", block, re.M)
    return found


def recap(out: str) -> dict:
    m = re.search(r"^\S+\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out, re.M)
    assert m, out
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups())))


def replace_member(src: Path, dst: Path, name: str, data: bytes, sums: bool) -> None:
    """Copy a bundle with member ``name`` replaced; ``sums``: SHA256SUMS updated to match (checksums pass)."""
    with tarfile.open(src, "r:gz") as tin:
        members = [(m, tin.extractfile(m).read() if m.isfile() else None) for m in tin.getmembers()]
    with tarfile.open(dst, "w:gz") as tout:
        for m, body in members:
            if m.name == name:
                body = data
            elif m.name == device_agent.SUMS_FILE and sums:
                digest = hashlib.sha256(data).hexdigest()
                body = b"".join(re.sub(rb"^[0-9a-f]{64}(?=  " + re.escape(name.encode()) + rb"$)", digest.encode(),
                                       line) + b"\n" for line in body.splitlines())
            if body is not None:
                m.size = len(body)
            tout.addfile(m, io.BytesIO(body) if body is not None else None)


def test_argv_with_spliced_lists_renders_one_jinja_list():
    assert _argv(["{{ r }}/bin/x", "bench"]) == ["{{ r }}/bin/x", "bench"]
    rendered = _argv(["{{ r }}/bin/x", "it's", ListVar("paths"), "--json", "{{ r }}/{{ n }}.json", ListVar("more")])
    assert rendered == ("{{ [(r) ~ '/bin/x', 'it\\'s'] + paths + ['--json', (r) ~ '/' ~ (n) ~ '.json'] + more }}")
    assert to_yaml({"a": [{"b": "x\"y", "c": []}], "d": True}) == 'a:\n  - b: "x\\"y"\n    c: []\nd: true'


def test_ansible_output_folder_rules(tmp_path):
    bundle, _ = make_bundle([fake_artifact(tmp_path / "arts")], tmp_path / "b.tar.gz")
    out = tmp_path / "fleet"
    r = cli("deploy", bundle, "--ansible", out, "--path", "~/dce")
    assert r.returncode == 0, r.stderr
    assert "ansible-playbook -i inventory.example.yml playbook.yml" in r.stdout
    role = out / "roles" / ROLE
    assert (role / "files" / device_agent.__file__.rsplit("/", 1)[-1]).read_bytes() == Path(
        device_agent.__file__).read_bytes()
    shipped = list((role / "files").glob("bundle-*.tar.gz"))
    assert len(shipped) == 1 and shipped[0].read_bytes() == bundle.read_bytes()
    assert 'deconv_edge_path: "~/dce"' in (role / "defaults" / "main.yml").read_text()

    # Not empty: refused, and left as it was; --force replaces what it wrote and keeps the user's files.
    (out / "my-fleet.yml").write_text("all: {}\n")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    r = cli("deploy", bundle, "--ansible", out)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "--force" in r.stderr, r.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    r = cli("deploy", bundle, "user@10.0.0.7:2222", "--ansible", out, "--force")
    assert r.returncode == 0 and "kept my-fleet.yml" in r.stdout, r.stdout + r.stderr
    assert (out / "my-fleet.yml").read_text() == "all: {}\n" and (out / "inventory.yml").is_file()
    assert not (out / "inventory.example.yml").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fleet")]  # no temporary folder left behind

    # A folder of someone else's is never replaced, not even with --force; bad input is one error line.
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    r = cli("deploy", bundle, "--ansible", other, "--force")
    assert r.returncode == 2 and "not written by deploy --ansible" in r.stderr and (other / "keep.txt").is_file()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bundle.read_bytes()[:-40])
    for args in ((bad, "--ansible", tmp_path / "new"), (bundle, "--ansible", tmp_path / "no" / "such"),
                 (bundle, "--ansible", tmp_path / "new", "--jobs", "4"), (bundle, "a;b", "--ansible", tmp_path / "n"),
                 (bundle,), (bundle, "--force", "u@h")):
        r = cli("deploy", *args)
        assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "new").exists()


def test_playbook_deploys_verifies_benches_and_converges(device, real_model, tmp_path):
    bundle, _ = make_bundle([real_model], tmp_path / "bundle.tar.gz")
    out, root = tmp_path / "fleet", device.home / "fleet"
    r = cli("deploy", bundle, f"{device.host}:{device.port}", "--ansible", out, "--identity", device.identity,
            "--known-hosts", device.known_hosts, "--path", "~/fleet", "--setup", "--system-site-packages",
            "--python", sys.executable, "--bench",
            "--bench-args=--runs 3 --warmup 1 --threads 1 --input-size 24x32", timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    host = f"{device.host}_{device.port}"
    results = out / "deploy-results" / host

    # First run: copied, runtime installed, verified by the device's deconv-edge, switched, benched, fetched.
    first = play(out)
    log = first.stdout + first.stderr
    assert first.returncode == 0, log
    assert task_statuses(log, "Copy the bundle to the device") == ["changed"], log
    release = os.readlink(root / "current")
    assert release.endswith("-" + hashlib.sha256(bundle.read_bytes()).hexdigest()[:12])
    assert (root / release / "models" / real_model.name).is_file()
    assert verify(root / "current").ok
    assert (root / "venv" / "bin" / "deconv-edge").is_file()
    summary = json.loads((results / "deploy.json").read_text())
    assert summary["ok"] and summary["release"] == Path(release).name, summary
    assert summary["verified_by"] == "deconv-edge verify", summary
    payload = json.loads((results / "bench.json").read_text())
    assert payload["results"] and payload["results"][0]["frame"]["p50_ms"] > 0, payload
    assert real_model.name in (results / "bench.txt").read_text()

    # Second run: nothing to do on the device (the same bundle is current and passes its checks).
    second = play(out, "-e", "deconv_edge_bench=false")
    log = second.stdout + second.stderr
    assert second.returncode == 0, log
    assert recap(log)["changed"] == 0, log
    assert task_statuses(log, "Copy the bundle to the device") == ["skipping"], log
    assert task_statuses(log, "Copy the deconv-edge wheel to the device") == ["ok"], log
    assert os.readlink(root / "current") == release and len(os.listdir(root / "releases")) == 1

    # A bundle whose manifest was edited and its checksum list redone passes the device agent's checksums but not
    # deconv-edge verify: the play fails there, the new release is discarded and current stays as it was.
    shipped = next((out / "roles" / ROLE / "files").glob("bundle-*.tar.gz"))
    name = f"models/{real_model.name}.json"
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile(name).read())
    manifest["scale"] = 0
    replace_member(bundle, shipped, name, json.dumps(manifest).encode(), sums=True)
    third = play(out, "-e", "deconv_edge_bench=false")
    log = third.stdout + third.stderr
    assert third.returncode != 0 and recap(log)["failed"] == 1, log
    assert task_statuses(log, "deconv-edge verify on the device") == ["fatal"], log
    assert task_statuses(log, "Discard the release that failed verify") == ["changed"], log
    assert task_statuses(log, "Switch current to the release") == [], log
    assert os.readlink(root / "current") == release and os.listdir(root / "releases") == [Path(release).name]
    failed = json.loads((results / "deploy.json").read_text())
    assert not failed["ok"] and "deconv-edge verify on the device failed" in failed["message"], failed

    # A damaged artifact fails the checksums while unpacking: nothing is switched either.
    with tarfile.open(bundle) as tar:
        data = tar.extractfile(f"models/{real_model.name}").read()
    replace_member(bundle, shipped, f"models/{real_model.name}", bytes([data[0] ^ 1]) + data[1:], sums=False)
    fourth = play(out, "-e", "deconv_edge_bench=false")
    log = fourth.stdout + fourth.stderr
    assert fourth.returncode != 0 and "sha256 mismatch" in log, log
    assert task_statuses(log, "Switch current to the release") == [], log
    assert os.readlink(root / "current") == release and os.listdir(root / "releases") == [Path(release).name]
    assert verify(root / "current").ok
