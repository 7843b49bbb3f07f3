"""``deconv-edge``: one console command, subcommands from the ``COMMANDS`` registry.

User mistakes (:class:`~deconv_edge_core.errors.UserError`, bad options) print one ``error:`` line and exit 2;
what the system refuses (a full disk, a read-only folder, no memory left) one ``error:`` line and exit 1;
Ctrl-C exits 130. Every line is redacted (no password of a stream URL is printed). Nothing heavy is
imported until a subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from deconv_edge_core.commands import COMMANDS
from deconv_edge_core.errors import UserError

# Modules that register commands; optional ones may be absent in a partial checkout.
COMMAND_MODULES = ("deconv_edge_train.cli", "deconv_edge_convert.cli", "edge_runtime.runtime_cli",
                   "edge_runtime.bench.cli", "edge_runtime.ship.cli", "edge_runtime.models_cli",
                   "deconv_edge_convert.benchmark_cli")


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
    from deconv_edge_core import __version__

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
    # So would OpenCV's and FFmpeg's ("[mov,mp4,...] moov atom not found" before our own message); read by
    # OpenCV when it first loads, so set before any command imports cv2. An explicit setting wins.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from deconv_edge_core.redact import redact
    from deconv_edge_core.text import single_line

    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"error: {redact(single_line(str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; use a smaller input, --tile or --max-pixels", file=sys.stderr)
        return 1
    except OSError as exc:
        # What the system refused mid-run (full disk, read-only mount, lost permission): one line, no traceback.
        from deconv_edge_core.outputs import describe_os_error

        print(f"error: {redact(describe_os_error(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
