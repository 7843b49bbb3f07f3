"""``deconv-edge verify --accuracy``: the bundle's reference pictures, run here (see :mod:`edge_runtime.inference.accuracy`)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Optional

from deconv_edge_core.errors import UserError


def run_accuracy(target: str, kind: str, backend: str = "auto", json_out: Optional[str] = None) -> int:
    """Check every artifact of a bundle (file or unpacked folder) that has references; print one line each.

    Returns:
        0 when every artifact passed, 1 otherwise.

    Raises:
        UserError: a single artifact (references live in a bundle), or a bundle without ``refs/``.
    """
    from deconv_edge_core.fsutil import write_json_atomic

    from .agent.device_agent import AgentError, safe_extract
    from .inference.accuracy import check_folder, results_json
    from .inference.config import RuntimeConfig

    if kind == "artifact":
        raise UserError("--accuracy needs a bundle or an unpacked bundle (its refs/ holds the reference pictures)")
    config = RuntimeConfig(backend=backend)
    if kind == "bundle":
        with tempfile.TemporaryDirectory(prefix="dce-accuracy-") as tmp:
            try:
                safe_extract(str(target), tmp)
            except AgentError as exc:
                raise UserError(str(exc)) from None
            results = check_folder(Path(tmp), config)
    else:
        results = check_folder(Path(target), config)
    for r in results:
        print(r.line(), file=sys.stdout if r.passed else sys.stderr)
    if json_out:
        write_json_atomic(json_out, results_json(results))
    failed = [r for r in results if not r.passed]
    if failed:
        print(f"error: {len(failed)} of {len(results)} artifact(s) are off their reference figures on this machine",
              file=sys.stderr)
        return 1
    print(f"accuracy ok: {len(results)} artifact(s) match their references here")
    return 0
