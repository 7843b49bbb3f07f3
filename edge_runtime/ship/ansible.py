"""``deconv-edge deploy --ansible DIR``: write an Ansible playbook and role that deploy a bundle as ``deploy`` does.

``deploy`` drives a handful of devices over its own SSH connections. A fleet of hundreds is run by Ansible, with
its own inventory, forks, ``serial`` batches and retry files; this module writes what it needs::

    DIR/playbook.yml                     hosts: the group deconv_edge (or -e deconv_edge_hosts=PATTERN)
    DIR/ansible.cfg                      pipelining, quiet interpreter discovery
    DIR/inventory.yml                    the HOSTS named on the command line (inventory.example.yml if none)
    DIR/roles/deconv_edge/defaults/main.yml    every option of the command line, as a role variable
    DIR/roles/deconv_edge/tasks/{main,setup,bench}.yml
    DIR/roles/deconv_edge/files/         the bundle, the wheel (--setup) and the device agent
    DIR/.deconv-edge-ansible.json        what wrote the folder (``--force`` replaces only such a folder)

Per device the role runs the commands ``deploy`` runs (:mod:`edge_runtime.ship.device_steps`, the same device
agent): ``prepare``, copy the bundle to ``incoming/``, ``--setup`` (venv, pip), ``unpack`` (checksums), ``deconv-edge
verify`` with the device's runtime (a failure discards the release), ``switch`` ``current``, and ``--bench`` with
its JSON fetched to ``RESULTS/HOST/``. It converges: when ``current`` already is this bundle (same hash) and passes
its checks, nothing is copied, unpacked or switched, so a second run reports ``changed=0``. ``changed`` counts the
devices only; the results files on the controller are rewritten on every run.

The folder is written in a hidden sibling and renamed into place, so a failure leaves an existing ``DIR`` as it
was. A non-empty ``DIR`` is refused unless ``--force`` is given and the folder was written by this command; then
the generated files are replaced and everything else in it (an inventory of your own, ``deploy-results/``) is kept.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import sha256_file
from edge_runtime.agent import device_agent

from .ansible_role import AGENT_FILE, bench_tasks, main_tasks, setup_tasks
from .ansible_yaml import jinja_literal, yaml_doc
from .deploy import DeployConfig, Host, Log, parse_host, prepare_upload

ROLE = "deconv_edge"
GROUP = "deconv_edge"
MARKER = ".deconv-edge-ansible.json"
MARKER_SCHEMA = "deconv-edge-ansible/1"
#: Copy attempts after the first one (a flaky link to one device of hundreds).
COPY_RETRIES = 2


@dataclass(frozen=True)
class AnsibleOutput:
    """What :func:`write_ansible` wrote.

    Attributes:
        folder: the folder (``DIR``).
        playbook: ``DIR/playbook.yml``.
        inventory: ``DIR/inventory.yml`` (the HOSTS given) or ``DIR/inventory.example.yml`` (none given).
        bundle_name: the bundle's file name in the role's ``files/`` and in the device's ``incoming/``.
        wheel_name: the wheel shipped for ``--setup``, or ``None``.
        hosts: how many hosts the inventory lists.
        kept: entries of an earlier ``DIR`` carried over by ``--force`` (not written by this command).
    """

    folder: Path
    playbook: Path
    inventory: Path
    bundle_name: str
    wheel_name: Optional[str]
    hosts: int
    kept: tuple = ()


def _defaults(cfg: DeployConfig, bundle_name: str, wheel_name: Optional[str], extras: Sequence[str]) -> dict:
    results = cfg.results_dir
    return {
        "deconv_edge_bundle": bundle_name,
        "deconv_edge_path": cfg.remote_path,
        "deconv_edge_python": cfg.remote_python,
        "deconv_edge_keep": cfg.keep_releases,
        "deconv_edge_setup": cfg.setup,
        "deconv_edge_wheel": wheel_name or "",
        "deconv_edge_system_site_packages": cfg.system_site_packages,
        "deconv_edge_extras": ",".join(extras),
        "deconv_edge_bench": cfg.bench,
        "deconv_edge_bench_args": list(cfg.bench_args),
        "deconv_edge_results_dir": results if Path(results).is_absolute() else "{{ playbook_dir }}/" + results,
        "deconv_edge_copy_retries": COPY_RETRIES,
    }


_DEFAULTS_HEADER = """
Role variables (override in the inventory, group_vars or with -e NAME=VALUE). Written by deconv-edge deploy
--ansible from its command line:
  deconv_edge_bundle    the bundle: a file in this role's files/, or an absolute path on the controller
                        (its hash names it on the device; the device checks every checksum before use)
  deconv_edge_path      deployment root on the device (relative to the login's home): releases/, current, venv/
  deconv_edge_python    the device's Python (runs the device agent and creates the venv)
  deconv_edge_keep      releases kept on the device
  deconv_edge_setup     create ROOT/venv and install deconv_edge_wheel (+ deconv_edge_extras) there
  deconv_edge_bench     run deconv-edge bench on the device, JSON to deconv_edge_results_dir/HOST/
"""


def _inventory(hosts: Sequence[Host], cfg: DeployConfig) -> dict:
    group_vars: dict = {}
    if cfg.identity:
        group_vars["ansible_ssh_private_key_file"] = str(Path(cfg.identity).resolve())
    opts = ["BatchMode=yes"]
    if cfg.known_hosts:
        opts.append(f"UserKnownHostsFile={Path(cfg.known_hosts).resolve()}")
    if cfg.accept_new_host_key:
        opts.append("StrictHostKeyChecking=accept-new")
    group_vars["ansible_ssh_common_args"] = " ".join(f"-o {shlex.quote(o)}" for o in opts)
    group_vars["ansible_ssh_timeout"] = max(1, int(round(cfg.connect_timeout_s)))
    if cfg.port is not None:
        group_vars["ansible_port"] = cfg.port
    if cfg.remote_python != "python3":
        group_vars["ansible_python_interpreter"] = cfg.remote_python
    members = {}
    for h in hosts:
        entry = {"ansible_host": h.hostname}
        if h.user:
            entry["ansible_user"] = h.user
        if h.port is not None:
            entry["ansible_port"] = h.port
        members[h.label] = entry
    return {GROUP: {"hosts": members, "vars": group_vars}}


def _readme(inventory: str, bundle_name: str) -> str:
    return f"""# deconv-edge deployment with Ansible

Written by `deconv-edge deploy --ansible` for `{bundle_name}`. From this folder:

```sh
ansible-playbook -i {inventory} playbook.yml                 # the hosts of group {GROUP}
ansible-playbook -i /path/to/fleet.yml playbook.yml -f 50 -e deconv_edge_hosts=cameras
ansible-playbook -i {inventory} playbook.yml -e deconv_edge_bench=false   # deploy only
```

Per host: copy the bundle, set up the runtime (deconv_edge_setup), unpack and check every checksum, run
`deconv-edge verify` on the device, switch `current` to the release, bench (deconv_edge_bench) and fetch the
JSON to deploy-results/HOST/. A failed check leaves `current` as it was. A second run changes nothing when
`current` already is this bundle. The role variables are listed in roles/{ROLE}/defaults/main.yml.
"""


def _ansible_cfg() -> str:
    return ("# Written by deconv-edge deploy --ansible. Forks, serial batches and retries are the fleet's to set\n"
            "# (ansible-playbook -f N, --limit @playbook.retry).\n"
            "[defaults]\ninterpreter_python = auto_silent\n\n"
            "[ssh_connection]\npipelining = True\n")


def _playbook() -> list:
    return [{"name": "Deploy a deconv-edge bundle", "hosts": "{{ deconv_edge_hosts | default(" + jinja_literal(GROUP) + ") }}",
             "gather_facts": False, "roles": [ROLE]}]


# ---- writing the folder -------------------------------------------------------------------------------------------
def _check_target(folder: Path, force: bool) -> Optional[dict]:
    """The marker of an earlier folder ``--force`` may replace, ``None`` when the folder is new or empty.

    Raises:
        UserError: ``folder`` is a file or a link, is not empty (without ``--force``), or was not written here.
    """
    if not folder.parent.is_dir():
        raise UserError(f"--ansible {folder}: the folder {folder.parent} does not exist")
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UserError(f"--ansible {folder}: exists and is not a folder")
    if not folder.exists() or not any(folder.iterdir()):
        return None
    marker = folder / MARKER
    if not force:
        raise UserError(f"--ansible {folder}: the folder is not empty; pass --force to replace what deploy --ansible "
                        "wrote there (other files are kept)")
    try:
        info = json.loads(marker.read_text())
        if info.get("schema") != MARKER_SCHEMA:
            raise ValueError(info.get("schema"))
    except (OSError, ValueError, AttributeError):
        raise UserError(f"--ansible {folder}: not written by deploy --ansible (no {MARKER}); --force replaces only "
                        "such a folder: name a new or empty one") from None
    return info


def _write_tree(root: Path, up, hosts: Sequence[Host], cfg: DeployConfig) -> tuple:
    role = root / "roles" / ROLE
    for sub in ("defaults", "tasks", "files", "meta"):
        (role / sub).mkdir(parents=True)
    shutil.copy2(up.bundle, role / "files" / up.bundle_name)
    shutil.copy2(device_agent.__file__, role / "files" / AGENT_FILE)
    wheel_name = None
    if up.wheel is not None:
        wheel_name = up.wheel.name
        shutil.copy2(up.wheel, role / "files" / wheel_name)
    inventory = "inventory.yml" if hosts else "inventory.example.yml"
    texts = {
        "playbook.yml": yaml_doc("Written by deconv-edge deploy --ansible. Run: ansible-playbook -i INVENTORY playbook.yml\n"
                             "serial / max_fail_percentage for rolling batches go on this play.", _playbook()),
        "ansible.cfg": _ansible_cfg(),
        inventory: yaml_doc("Devices of the group deconv_edge (or use your fleet's inventory: -e deconv_edge_hosts=GROUP).\n"
                        + ("" if hosts else "Add hosts, e.g.:\n  pi-kitchen: {ansible_host: 10.0.0.7, ansible_user: pi}"),
                        _inventory(hosts, cfg)),
        "README.md": _readme(inventory, up.bundle_name),
        f"roles/{ROLE}/defaults/main.yml": yaml_doc(_DEFAULTS_HEADER, _defaults(cfg, up.bundle_name, wheel_name,
                                                                            up.extras)),
        f"roles/{ROLE}/tasks/main.yml": yaml_doc("Deploy one bundle (deconv-edge deploy's steps; see ../defaults).",
                                             main_tasks()),
        f"roles/{ROLE}/tasks/setup.yml": yaml_doc("The runtime: ROOT/venv with the deconv-edge wheel.", setup_tasks()),
        f"roles/{ROLE}/tasks/bench.yml": yaml_doc("deconv-edge bench on the device; its JSON back to the controller.",
                                              bench_tasks()),
        f"roles/{ROLE}/meta/main.yml": yaml_doc("Role metadata.", {"galaxy_info": {
            "role_name": ROLE, "author": "deconv-edge", "license": "Apache-2.0", "min_ansible_version": "2.16",
            "description": "Deploy a deconv-edge bundle: copy, verify on the device, switch current, bench"},
            "dependencies": []}),
    }
    for rel, text in texts.items():
        (root / rel).write_text(text)
    from .bundle import package_version

    top = sorted({rel.split("/")[0] for rel in texts} | {"roles", MARKER})
    (root / MARKER).write_text(json.dumps({
        "schema": MARKER_SCHEMA, "deconv_edge": package_version(), "bundle": up.bundle_name,
        "bundle_sha256": sha256_file(up.bundle), "wheel": wheel_name, "written": top}, indent=2) + "\n")
    return inventory, wheel_name, top


def _swap_in(tmp: Path, folder: Path, old_info: Optional[dict]) -> tuple:
    """Put ``tmp`` in place of ``folder``; an earlier folder's own files come along. Returns what was kept."""
    if old_info is None:
        if folder.exists():
            folder.rmdir()  # empty
        os.rename(tmp, folder)
        return ()
    ours = set(old_info.get("written") or ())
    kept = []
    for entry in sorted(folder.iterdir()):
        if entry.name not in ours and not (tmp / entry.name).exists():
            os.rename(entry, tmp / entry.name)
            kept.append(entry.name)
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    try:
        os.rename(folder, old / folder.name)
        try:
            os.rename(tmp, folder)
        except OSError:
            os.rename(old / folder.name, folder)
            raise
    except OSError:
        for name in kept:
            os.rename(tmp / name, folder / name)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return tuple(kept)


def write_ansible(bundle: Union[str, Path], folder: Union[str, Path], hosts: Sequence[str], cfg: DeployConfig,
                  force: bool = False, log: Log = print) -> AnsibleOutput:
    """Write the playbook, role and inventory that deploy ``bundle`` as ``deploy`` would, into ``folder``.

    Args:
        bundle: from ``deconv-edge bundle``; checked here as ``deploy`` checks it, and copied into the role.
        folder: the output folder; new, empty, or (``force``) one this function wrote before.
        hosts: ``[user@]host[:port]`` for ``inventory.yml``; none: an example inventory, the fleet brings its own.
        cfg: the deployment options; they become the role's defaults and the inventory's SSH settings.
        force: replace the files of an earlier :func:`write_ansible` in ``folder`` (others are kept).
        log: one line per step.

    Returns:
        What was written.

    Raises:
        UserError: bad options or hosts, a bundle that fails verification, no wheel for ``--setup``, or a
            ``folder`` that may not be replaced. ``folder`` is left as it was.
    """
    cfg.validate()
    parsed = [parse_host(h) for h in hosts]
    labels = [h.label for h in parsed]
    dupes = sorted({lb for lb in labels if labels.count(lb) > 1})
    if dupes:
        raise UserError(f"host given twice: {', '.join(dupes)}")
    folder = Path(os.path.abspath(folder))
    old_info = _check_target(folder, force)
    with tempfile.TemporaryDirectory(prefix="dce-ansible-") as work:
        up = prepare_upload(bundle, cfg, Path(work), log)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            inventory, wheel_name, _ = _write_tree(tmp, up, parsed, cfg)
            kept = _swap_in(tmp, folder, old_info)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return AnsibleOutput(folder=folder, playbook=folder / "playbook.yml", inventory=folder / inventory,
                         bundle_name=up.bundle_name, wheel_name=wheel_name, hosts=len(parsed), kept=kept)
