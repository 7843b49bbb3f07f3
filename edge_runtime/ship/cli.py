"""``deconv-edge bundle``, ``verify`` and ``deploy``: get artifacts onto devices, intact, and their latency back.

Module level stays light: the logic lives in :mod:`edge_runtime.ship.bundle` and :mod:`edge_runtime.ship.deploy`, imported
when a command runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from deconv_edge_core.commands import command
from deconv_edge_core.errors import UserError


@command
class BundleCommand:
    name = "bundle"
    help = "pack artifacts, their manifests, SHA256SUMS, a README and the runtime requirements into a .tar.gz"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("artifacts", nargs="+", metavar="ARTIFACT",
                       help="artifact (its manifest ARTIFACT.json must sit beside it), or a folder of them")
        p.add_argument("-o", "--out", required=True, metavar="BUNDLE.tar.gz", help="bundle to write")
        p.add_argument("--platform", metavar="PLATFORM", help="add an offline wheelhouse (wheels/) for this device "
                       "platform: linux-aarch64, linux-x86_64 or linux-armv7l (where the index has its wheels)")
        p.add_argument("--python", metavar="3.X", help="the device's Python for --platform (default: this one's)")
        p.add_argument("--glibc", metavar="2.X", help="the device's glibc for --platform (default 2.36, Raspberry "
                       "Pi OS Bookworm; JetPack 5: 2.31, JetPack 6: 2.35)")
        p.add_argument("--wheel", metavar="FILE", help="with --platform: this deconv-edge wheel instead of building one")
        p.add_argument("--extra", action="append", metavar="NAME", help="runtime extra for the wheelhouse instead of "
                       "the artifacts' (repeatable): edge, onnx, legacy (tflite-runtime, e.g. for Python 3.8)")
        p.add_argument("--no-references", action="store_true",
                       help="leave out refs/, the reference pictures 'verify --accuracy' checks on the device")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from deconv_edge_core.outputs import check_output_file

        from .bundle import is_bundle_name, make_bundle
        from .platform_wheels import parse_target

        if is_bundle_name(args.out):
            check_output_file(args.out, "-o")
        target = parse_target(args.platform, args.python, args.glibc)
        if args.wheel and target is None:
            raise UserError("--wheel goes with --platform (it is the wheel put in the wheelhouse)")
        out, entries = make_bundle(args.artifacts, args.out, target=target, wheel=args.wheel, extras=args.extra,
                                   references=not args.no_references, log=print)
        for e in entries:
            note = "" if e.manifest.status == "passed" else f"  (warning: accuracy gate {e.manifest.status})"
            print(f"  models/{e.name}  {e.manifest.format} {e.manifest.task_label}{note}")
        print(f"wrote {out} ({len(entries)} artifact(s), {out.stat().st_size / 1e6:.2f} MB)")
        return 0


@command
class VerifyCommand:
    name = "verify"
    help = "check every checksum and manifest of a bundle, an unpacked bundle folder or one artifact"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("target", metavar="DIR_OR_BUNDLE", help="BUNDLE.tar.gz, an unpacked bundle, or an artifact")
        p.add_argument("--accuracy", action="store_true",
                       help="also run each model on the bundle's reference pictures here, with the backend it uses "
                            "on this machine, and compare with the workstation's PSNR and max error")
        p.add_argument("--backend", default="auto", metavar="KEY", help="with --accuracy: backend (default auto)")
        p.add_argument("--json", metavar="FILE", help="with --accuracy: write the results as JSON")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from .bundle import verify

        report = verify(args.target)
        if not report.ok:
            for problem in report.problems:
                print(f"FAILED {problem}", file=sys.stderr)
            print(f"error: {report.target}: {len(report.problems)} problem(s); copy or rebuild it", file=sys.stderr)
            return 1
        print(f"ok: {report.target} ({report.kind}): {report.files_checked} file(s) match, "
              f"{len(report.artifacts)} artifact(s): {', '.join(report.artifacts)}")
        if args.accuracy:
            from ..accuracy_cli import run_accuracy

            return run_accuracy(args.target, report.kind, args.backend, args.json)
        return 0


@command
class DeployCommand:
    name = "deploy"
    help = "copy a bundle to devices over SSH, verify it there, switch to it, optionally set up and bench"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        from .deploy import COPY_TOOLS, DEFAULT_REMOTE_PATH, DEFAULT_RESULTS_DIR

        p.add_argument("bundle", metavar="BUNDLE", help="from 'deconv-edge bundle'")
        p.add_argument("hosts", nargs="*", metavar="HOST",
                       help="user@host, user@host:PORT, user@[IPv6]:PORT or ssh://user@host:PORT; deployed in parallel "
                            "(with --ansible: optional, they go into DIR/inventory.yml)")
        p.add_argument("--path", default=DEFAULT_REMOTE_PATH, metavar="DIR",
                       help=f"deployment root on the device, relative to the login's home (default "
                            f"{DEFAULT_REMOTE_PATH}): releases/, current -> the active one, venv/")
        p.add_argument("--port", type=int, metavar="P", help="SSH port for hosts that name none (default: ssh's)")
        p.add_argument("--identity", metavar="KEY", help="private key file (ssh -i)")
        p.add_argument("--known-hosts", metavar="FILE", help="known_hosts file to use instead of ~/.ssh/known_hosts")
        p.add_argument("--accept-new-host-key", action="store_true",
                       help="trust a host key seen for the first time (StrictHostKeyChecking=accept-new); "
                            "a changed key is always refused")
        p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                       help="seconds to wait for each connection (default 10)")
        p.add_argument("--setup", action="store_true",
                       help="create DIR/venv on the device and install deconv-edge there: from the bundle's wheels "
                            "with pip --no-index when it has them (bundle --platform), else from a wheel of this "
                            "one (built from the checkout, or repacked from the installed package; the device's "
                            "pip fetches the requirements)")
        p.add_argument("--system-site-packages", action="store_true",
                       help="with --setup: reuse the device's numpy/OpenCV/runtime packages (as on Raspberry Pi OS "
                            "with apt's python3-opencv) and install the wheel without dependencies; applies when "
                            "the venv is first created")
        p.add_argument("--extra", action="append", metavar="NAME",
                       help="runtime extra for --setup, e.g. edge, onnx, legacy (repeatable; default: from the "
                            "bundle's artifacts)")
        p.add_argument("--wheel", metavar="FILE", help="with --setup: install this wheel instead of building one")
        p.add_argument("--python", default="python3", metavar="CMD",
                       help="Python on the device (default python3)")
        p.add_argument("--bench", action="store_true",
                       help="run 'deconv-edge bench' on the device; JSON into RESULTS/HOST/, one table for all hosts")
        p.add_argument("--check", action="store_true",
                       help="run 'deconv-edge verify --accuracy' on the device (the bundle's reference pictures "
                            "with the device's backend) before switching; the result goes in the table")
        p.add_argument("--bench-args", default="", metavar="ARGS",
                       help="more arguments for the remote bench, e.g. --bench-args='--threads 1,2 --runs 50'")
        p.add_argument("--copy-with", default="auto", choices=COPY_TOOLS,
                       help="auto (default): rsync when both ends have it (resumes a cut copy), else scp")
        p.add_argument("--results", default=DEFAULT_RESULTS_DIR, metavar="DIR",
                       help=f"local folder for per-host results (default {DEFAULT_RESULTS_DIR})")
        p.add_argument("--keep", type=int, default=3, metavar="N", help="releases kept on the device (default 3)")
        p.add_argument("--jobs", type=int, default=None, metavar="N", help="hosts deployed at once (default 8)")
        p.add_argument("--ansible", metavar="DIR",
                       help="write an Ansible playbook and role into DIR that do these steps (run it with your "
                            "inventory: ansible-playbook -i INVENTORY DIR/playbook.yml) instead of deploying; "
                            "relative --results are then relative to DIR")
        p.add_argument("--force", action="store_true",
                       help="with --ansible: replace the files an earlier --ansible wrote in DIR (others are kept)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        import threading

        from .deploy import DeployConfig, deploy
        from .results import bench_warnings, latency_table, summary_table

        try:
            bench_args = tuple(shlex.split(args.bench_args))  # parsed here, quoted again for the remote shell
        except ValueError as exc:
            raise UserError(f"--bench-args: {exc}") from None
        cfg = DeployConfig(
            remote_path=args.path, port=args.port, identity=args.identity, known_hosts=args.known_hosts,
            accept_new_host_key=args.accept_new_host_key, connect_timeout_s=args.connect_timeout, setup=args.setup,
            system_site_packages=args.system_site_packages, extras=tuple(args.extra) if args.extra else None,
            wheel=args.wheel, remote_python=args.python, bench=args.bench, bench_args=bench_args, check=args.check,
            copy_with=args.copy_with,
            results_dir=args.results, keep_releases=args.keep, jobs=8 if args.jobs is None else args.jobs)
        if args.ansible:
            return _write_ansible(args, cfg)
        if args.force:
            raise UserError("--force goes with --ansible DIR")
        lock = threading.Lock()

        def log(msg: str) -> None:
            with lock:
                print(msg, flush=True)

        results = deploy(args.bundle, args.hosts, cfg, log=log)
        print()
        print(summary_table(results))
        table = latency_table(results) if cfg.bench else None
        if table:
            print()
            print("latency on the devices (frame = the whole frame path: preprocess, model, postprocess):")
            print(table)
            for warning in bench_warnings(results):
                print(f"warning: {warning}")
        failed = [r for r in results if not r.ok]
        if failed:
            print(f"error: {len(failed)} of {len(results)} host(s) failed", file=sys.stderr)
            return 1
        print(f"all {len(results)} host(s) deployed; results in {cfg.results_dir}/")
        return 0


def _write_ansible(args: argparse.Namespace, cfg) -> int:
    """``deploy --ansible DIR``: write the playbook and role (:mod:`edge_runtime.ship.ansible`), deploy nothing."""
    from .ansible import write_ansible

    if args.jobs is not None:
        raise UserError("--jobs does not apply to --ansible: Ansible's forks set how many hosts run at once "
                        "(ansible-playbook -f N)")
    if args.copy_with != "auto":
        raise UserError("--copy-with does not apply to --ansible: Ansible copies over its own connection")
    out = write_ansible(args.bundle, args.ansible, args.hosts, cfg, force=args.force, log=print)
    print(f"wrote {out.folder}: playbook.yml, roles/deconv_edge (bundle {out.bundle_name}"
          + (f", wheel {out.wheel_name}" if out.wheel_name else "") + f"), {out.inventory.name}"
          + (f" ({out.hosts} host(s))" if out.hosts else " (an example: bring your inventory)")
          + (f"; kept {', '.join(out.kept)}" if out.kept else ""))
    print(f"run: cd {shlex.quote(str(out.folder))} && ansible-playbook -i {out.inventory.name} playbook.yml")
    return 0
