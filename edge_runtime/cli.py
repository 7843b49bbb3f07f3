"""``deconv-edge``: one console command, subcommands from the ``COMMANDS`` registry.

User mistakes (:class:`~edge_runtime.errors.UserError`, bad options) print one ``error:`` line and exit 2;
Ctrl-C exits 130. Nothing heavy is imported until a subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from .commands import COMMANDS
from .errors import UserError

# Modules that register commands; optional ones may be absent in a partial checkout.
COMMAND_MODULES = ("train.cli", "convert.cli", "edge_runtime.runtime_cli", "edge_runtime.bench_cli",
                   "edge_runtime.deploy_cli")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + message."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    from train import __version__

    parser = _Parser(prog="deconv-edge", description="Train, convert, run and benchmark deconvolution "
                     "super-resolution models on edge devices.")
    parser.add_argument("--version", action="version", version=f"deconv-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        cmd = COMMANDS.get(name)
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    # TensorFlow's C++ logging would drown the one line we want users to read.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
