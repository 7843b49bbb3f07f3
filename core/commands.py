"""The ``deconv-edge`` subcommand registry.

A command is a class with ``name``, ``help``, ``add_arguments(parser)`` and ``run(args) -> int``, registered
with :func:`command`. Command modules import nothing heavy at module level: a device without TensorFlow must
still be able to list and run the runtime commands.
"""

from __future__ import annotations

import importlib.util

from .errors import UserError
from .registry import Registry

COMMANDS: Registry = Registry("command")

TRAIN_HINT = "pip install 'deconv-edge[train]'"


def command(cls):
    """Class decorator: register a subcommand under ``cls.name``."""
    COMMANDS.register(cls.name)(cls)
    return cls


def require_modules(what: str, modules: tuple[str, ...], hint: str) -> None:
    """Raise a one-line :class:`UserError` with an install hint when a module is missing.

    Checked with ``find_spec`` so nothing is imported (and no time spent) when all is present.
    """
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{what} needs {', '.join(missing)}, which is not installed: {hint}")


def require_train_extra(what: str) -> None:
    require_modules(what, ("tensorflow", "keras", "PIL", "skimage"), TRAIN_HINT)
