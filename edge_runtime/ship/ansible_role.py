"""The tasks of the ``deconv_edge`` Ansible role: ``deploy``'s device steps (:mod:`.device_steps`) as Ansible tasks."""

from __future__ import annotations

from edge_runtime.agent import device_agent

from . import device_steps as steps
from .ansible_yaml import ListVar, argv_if, argv_template, jinja_literal

AGENT_FILE = "device_agent.py"

# Jinja pieces of the role. The device layout is filled in from the agent's ``prepare`` at run time.
_PY = "{{ deconv_edge_python }}"
_ROOT = "{{ dce_root }}"
_LAYOUT = steps.DeviceLayout(_ROOT)
_AGENT_STDIN = "{{ lookup('ansible.builtin.file', " + jinja_literal(AGENT_FILE) + ") }}"
#: Tasks on the controller: its own Python, and never the fleet's become settings.
_LOCAL = {"delegate_to": "localhost", "become": False,
          "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}}
_HOST_RESULTS = "{{ deconv_edge_results_dir }}/{{ inventory_hostname }}"


# ---- the role -----------------------------------------------------------------------------------------------------
def _agent(name: str, command: str, *args: str, register: str, **extra) -> dict:
    task = {"name": name,
            "ansible.builtin.command": {"argv": steps.agent_argv(_PY, command, *args), "stdin": _AGENT_STDIN},
            "register": register}
    task.update(extra)
    return task


def _agent_json(register: str) -> str:
    return f"{{{{ {register}.stdout_lines[-1] | from_json }}}}"


def _last_error(result: str) -> str:
    """Jinja: the last non-empty stderr line of a registered result, else its ``msg``."""
    return (f"{{{{ ({result}.stderr_lines | default([]) | select | list | last | default({result}.msg | "
            f"default('failed'))) | regex_replace('^error: ', '') }}}}")


def _results_tasks(payload: str, failed: bool) -> list:
    what = "failure" if failed else "result"
    return [
        {"name": f"Results folder on the controller ({what})",
         "ansible.builtin.file": {"path": _HOST_RESULTS, "state": "directory", "mode": "0755"},
         "changed_when": False, **_LOCAL},
        {"name": f"Write deploy.json on the controller ({what})",
         "ansible.builtin.copy": {"content": payload, "dest": f"{_HOST_RESULTS}/deploy.json", "mode": "0644"},
         "changed_when": False, **_LOCAL},
    ]


def _deploy_json(ok: bool) -> str:
    fields = {"host": "inventory_hostname", "ok": "true" if ok else "false",
              "bundle_sha256": "dce_sha256 | default('')", "release": "dce_release.release | default('')",
              "verified_by": "dce_verified_by | default('')",
              "device_python": "dce_prepare.python | default('')",
              "device_machine": "dce_prepare.machine | default('')",
              "message": "'' " if ok else "dce_failure"}
    if ok:
        fields["bench_json"] = ("(deconv_edge_results_dir ~ '/' ~ inventory_hostname ~ '/bench.json') "
                                "if (deconv_edge_bench | bool) else none")
    body = ", ".join(f"{jinja_literal(k)}: ({v})" for k, v in fields.items())
    return "{{ {" + body + "} | to_nice_json }}\n"


def main_tasks() -> list:
    L = _LAYOUT
    short = f"{{{{ dce_sha256[:{device_agent.RELEASE_HASH_CHARS}] }}}}"
    steps_block = [
        {"name": "Where the bundle is on the controller",
         "ansible.builtin.set_fact": {"dce_bundle_local": "{{ deconv_edge_bundle if deconv_edge_bundle is abs "
                                                          "else role_path ~ '/files/' ~ deconv_edge_bundle }}"}},
        {"name": "Hash the bundle on the controller", "ansible.builtin.stat": {
            "path": "{{ dce_bundle_local }}", "checksum_algorithm": "sha256", "get_mime": False},
         "register": "dce_bundle_stat", "run_once": True, **_LOCAL},
        {"name": "The bundle exists", "ansible.builtin.assert": {
            "that": ["dce_bundle_stat.stat.isreg | default(false)"],
            "fail_msg": "no bundle at {{ dce_bundle_local }} on the controller (deconv_edge_bundle)",
            "quiet": True}, "run_once": True},
        {"name": "The bundle's hash", "ansible.builtin.set_fact": {
            "dce_sha256": "{{ dce_bundle_stat.stat.checksum }}"}},
        {"name": "The bundle's hash names it on the device", "ansible.builtin.set_fact": {"dce_short": short}},
        {"name": "The bundle's file name on the device", "ansible.builtin.set_fact": {
            "dce_bundle_name": steps.bundle_file_name("{{ dce_short }}")}},
        _agent("Prepare the deployment root", "prepare", "{{ deconv_edge_path }}", register="dce_prepare_run",
               changed_when=False),
        {"name": "Read what the device has", "ansible.builtin.set_fact": {
            "dce_prepare": _agent_json("dce_prepare_run")}},
        {"name": "Device facts", "ansible.builtin.set_fact": {
            "dce_root": "{{ dce_prepare.root }}", "dce_current": "{{ dce_prepare.current or '' }}",
            "dce_has_runtime": "{{ (dce_prepare.runtime | bool) or (deconv_edge_setup | bool) }}"}},
        {"name": "Benchmarking needs the runtime", "ansible.builtin.fail": {
            "msg": "deconv_edge_bench needs the runtime on the device: set deconv_edge_setup: true "
                   "(deploy --ansible DIR --setup)"},
         "when": "(deconv_edge_bench | bool) and not (dce_has_runtime | bool)"},
        _agent("Check the current release when it is this bundle already", "check", L.current,
               register="dce_current_check", changed_when=False, failed_when=False,
               when="dce_current.rstrip('+').endswith('-' ~ dce_short)"),
        {"name": "Is there anything to deploy", "ansible.builtin.set_fact": {
            "dce_needed": "{{ (dce_current_check is skipped) or (dce_current_check.rc != 0) }}"}},
        {"name": "Copy the bundle to the device", "ansible.builtin.copy": {
            "src": "{{ dce_bundle_local }}", "dest": L.incoming_file("{{ dce_bundle_name }}"), "mode": "0644"},
         "register": "dce_upload", "when": "dce_needed | bool",
         "retries": "{{ deconv_edge_copy_retries | int }}", "delay": 5, "until": "dce_upload is succeeded"},
        {"name": "Set up the runtime", "ansible.builtin.include_tasks": "setup.yml",
         "when": "deconv_edge_setup | bool"},
        _agent("Unpack the bundle beside the previous release and check every checksum", "unpack", _ROOT,
               "{{ dce_bundle_name }}", register="dce_unpack_run", when="dce_needed | bool"),
        {"name": "The release to verify", "ansible.builtin.set_fact": {"dce_release": (
            "{{ (dce_unpack_run.stdout_lines[-1] | from_json) if (dce_needed | bool) else "
            "{'release': dce_current | basename, 'dir': dce_root ~ '/' ~ dce_current, "
            "'artifacts': (dce_current_check.stdout_lines[-1] | from_json).artifacts} }}")}},
        {"name": "Verify the release with the device's runtime", "when": "dce_has_runtime | bool", "block": [
            {"name": "deconv-edge verify on the device",
             "ansible.builtin.command": {"argv": steps.verify_argv(L, "{{ dce_release.dir }}")},
             "register": "dce_verify", "changed_when": False,
             "failed_when": f"dce_verify.rc != 0 and {jinja_literal(steps.MISSING_VERIFY)} not in dce_verify.stderr"},
        ], "rescue": [
            _agent("Discard the release that failed verify", "discard", _ROOT, "{{ dce_release.release }}",
                   register="dce_discard", when="dce_needed | bool"),
            {"name": "Stop here: current is unchanged", "ansible.builtin.fail": {
                "msg": "deconv-edge verify on the device failed: " + _last_error("dce_verify")}},
        ]},
        {"name": "How the release was verified", "ansible.builtin.set_fact": {"dce_verified_by": (
            "{{ 'deconv-edge verify' if (dce_verify is defined and dce_verify is not skipped and "
            "dce_verify.rc == 0) else 'checksums' }}")}},
        _agent("Switch current to the release", "switch", _ROOT, "{{ dce_release.release }}",
               "{{ deconv_edge_keep | string }}", register="dce_switch", when="dce_needed | bool"),
        {"name": "Benchmark on the device", "ansible.builtin.include_tasks": "bench.yml",
         "when": "deconv_edge_bench | bool"},
        *_results_tasks(_deploy_json(ok=True), failed=False),
    ]
    return [{"name": "Deploy the bundle", "block": steps_block, "rescue": [
        {"name": "Why it failed", "ansible.builtin.set_fact": {
            "dce_failure": "{{ ansible_failed_task.name }}: " + _last_error("ansible_failed_result")}},
        *[dict(t, ignore_errors=True) for t in _results_tasks(_deploy_json(ok=False), failed=True)],
        {"name": "Failed", "ansible.builtin.fail": {"msg": "{{ dce_failure }}"}},
    ]}]


def setup_tasks() -> list:
    L = _LAYOUT
    wheel = L.incoming_file("{{ deconv_edge_wheel | basename }}")
    install = "dce_install_needed | bool"
    return [
        {"name": "A wheel to install", "ansible.builtin.assert": {
            "that": ["deconv_edge_wheel | length > 0"], "quiet": True,
            "fail_msg": "deconv_edge_setup needs deconv_edge_wheel (generate with deploy --ansible DIR --setup)"}},
        {"name": "Copy the deconv-edge wheel to the device", "ansible.builtin.copy": {
            "src": "{{ deconv_edge_wheel }}", "dest": wheel, "mode": "0644"},
         "register": "dce_wheel_copy", "retries": "{{ deconv_edge_copy_retries | int }}", "delay": 5,
         "until": "dce_wheel_copy is succeeded"},
        {"name": "Create the virtual environment", "ansible.builtin.command": {
            "argv": argv_if("deconv_edge_system_site_packages | bool",
                             steps.venv_argv(_PY, L, True), steps.venv_argv(_PY, L, False)),
            "creates": L.venv_python}, "register": "dce_venv"},
        {"name": "Install only when the wheel or the venv is new", "ansible.builtin.set_fact": {
            "dce_install_needed": "{{ (dce_wheel_copy is changed) or (dce_venv is changed) or "
                                  "not (dce_prepare.runtime | bool) }}"}},
        {"name": "pip install the wheel and its requirements (the device's pip fetches them)",
         "ansible.builtin.command": {"argv": argv_if("deconv_edge_extras | length > 0",
                                                      steps.pip_install_argv(L, wheel, ["{{ deconv_edge_extras }}"]),
                                                      steps.pip_install_argv(L, wheel, []))},
         "when": f"({install}) and not (deconv_edge_system_site_packages | bool)"},
        {"name": "pip install this build's code (no dependencies)",
         "ansible.builtin.command": {"argv": steps.pip_reinstall_argv(L, wheel)}, "when": install},
    ]


def bench_tasks() -> list:
    L = _LAYOUT
    remote_json = L.bench_json("{{ dce_release.release }}")
    argv = steps.bench_argv(L, [ListVar("dce_artifact_paths")], remote_json, [ListVar("deconv_edge_bench_args")])
    return [
        {"name": "Bench folder on the device", "ansible.builtin.file": {"path": L.bench_dir, "state": "directory"}},
        {"name": "The release's artifacts", "ansible.builtin.set_fact": {
            "dce_artifact_paths": "{{ dce_release.artifacts | map('regex_replace', '^', dce_release.dir ~ '/') "
                                  "| list }}"}},
        {"name": "deconv-edge bench on the device", "ansible.builtin.command": {"argv": argv_template(argv)},
         "register": "dce_bench", "changed_when": False, "failed_when": False},
        {"name": "The benchmark ran", "ansible.builtin.fail": {
            "msg": "{{ 'the runtime on the device has no bench command (this deconv-edge build lacks the "
                   "benchmark)' if " + jinja_literal(steps.MISSING_BENCH) + " in dce_bench.stderr else "
                   "'bench on the device failed: ' ~ ((dce_bench.stderr_lines + dce_bench.stdout_lines) | select "
                   "| list | last | default(dce_bench.rc)) }}"},
         "when": "dce_bench.rc != 0"},
        {"name": "Fetch bench.json to the controller", "ansible.builtin.fetch": {
            "src": remote_json, "dest": f"{_HOST_RESULTS}/bench.json", "flat": True}, "changed_when": False},
        {"name": "Write bench.txt on the controller", "ansible.builtin.copy": {
            "content": "{{ dce_bench.stdout }}\n", "dest": f"{_HOST_RESULTS}/bench.txt", "mode": "0644"},
         "changed_when": False, **_LOCAL},
    ]
