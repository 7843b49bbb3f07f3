"""Which shipped file of a model is fastest *here*: measured once by ``deconv-edge bench --pick``, cached.

The cache is one JSON file, ``picks.json`` in ``$DECONV_EDGE_CACHE_DIR`` (else ``$XDG_CACHE_HOME/deconv-edge``,
else ``~/.cache/deconv-edge``), keyed by a device key: a hash of what decides which file wins (CPU model,
usable cores, board, OS, and the versions of numpy, OpenCV and the runtimes). Another machine, a new runtime
version or a changed CPU mask gives another key, so a stale measurement is never used; a file whose sha256
changed since (a new shipped model) is not picked either (:func:`edge_runtime.inference.catalog.choose_file`).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Optional

from deconv_edge_core.fsutil import write_json_atomic

CACHE_ENV = "DECONV_EDGE_CACHE_DIR"
SCHEMA = "deconv-edge-picks/1"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deconv-edge"


def cache_file() -> Path:
    return cache_dir() / "picks.json"


def _key_fields() -> dict:
    from ..bench.fingerprint import device_fingerprint

    dev = device_fingerprint()
    return {"cpu_model": dev.cpu_model, "cores_usable": dev.cores_usable, "board_model": dev.board_model,
            "os": dev.os, "versions": dev.versions}


@lru_cache(maxsize=1)
def _device_key_cached(affinity: tuple) -> tuple:
    fields = _key_fields()
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16], fields


def device_key() -> tuple:
    """``(key, fields)``: this device's cache key (16 hex digits) and what it was made from."""
    try:
        affinity = tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        affinity = ()
    return _device_key_cached(affinity)


def _load() -> dict:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {"schema": SCHEMA, "devices": {}}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("devices"), dict):
        return {"schema": SCHEMA, "devices": {}}
    return data


def lookup(model: str) -> Optional[dict]:
    """The cached pick for ``model`` on this device, or ``None`` (no cache file: nothing is computed)."""
    if not cache_file().is_file():
        return None
    data = _load()
    key, _ = device_key()
    entry = (data["devices"].get(key) or {}).get("models", {}).get(model)
    return entry if isinstance(entry, dict) else None


def record(model: str, file: str, sha256: str, all_p50_ms: dict, input_hw: tuple, threads: int,
           command: str = "") -> dict:
    """Store the pick for ``model`` on this device; returns the stored entry."""
    data = _load()
    key, fields = device_key()
    device = data["devices"].setdefault(key, {"fingerprint": fields, "models": {}})
    device["fingerprint"] = fields
    entry = {"file": file, "sha256": sha256, "frame_p50_ms": all_p50_ms[file],
             "all_p50_ms": dict(all_p50_ms), "input_hw": list(input_hw), "threads": int(threads),
             "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command}
    device.setdefault("models", {})[model] = entry
    write_json_atomic(cache_file(), data)
    return entry


def pick_models(names, input_hw: tuple, runs: int, warmup: int, progress=None, command: str = "",
                say=print) -> list:
    """Measure every runnable file of each named model (all shipped models when ``names`` is empty), interleaved,
    with the default thread count, and cache the fastest per model.

    Returns ``(model, entry)`` pairs.

    Raises:
        UserError: an unknown model name, or a model with no file that runs here.
    """
    from deconv_edge_core.errors import UserError

    from ..bench.config import BenchConfig
    from ..bench.runner import run_bench
    from ..machine import usable_cores
    from .catalog import ALIASES, choose_file, resolve, shipped_models

    models = shipped_models()
    wanted = []
    for name in names or list(models):
        target = ALIASES.get(name).model if name in ALIASES else name
        if target not in models:
            resolve(name)  # an unknown name raises the usual one-line error listing the valid ones
            raise UserError(f"--pick takes model names or aliases, not files: '{name}' (try "
                            f"{', '.join(list(ALIASES)[:4])} or 'deconv-edge models')")
        if target not in wanted:
            wanted.append(target)
    threads = usable_cores()
    out = []
    for name in wanted:
        model = models[name]
        choose_file(model)  # raises when nothing runs here
        files = [f for f in model.files if f.runnable() is None and f.manifest.format != "edgetpu"]
        files += [f for f in model.files if f.runnable() is None and f.manifest.format == "edgetpu"]
        if len(files) == 1:
            say(f"{name}: only {files[0].name} runs here")
        report = run_bench(BenchConfig(artifacts=tuple(str(f.path) for f in files), threads=(threads,),
                                       input_hw=tuple(input_hw), runs=runs, warmup=warmup), progress, command=command)
        p50 = {Path(r.artifact).name: r.frame.p50_ms for r in report.results if r.ok and r.frame is not None}
        if not p50:
            raise UserError(f"--pick: no file of '{name}' could be measured: "
                            + "; ".join(f"{r.label}: {r.error}" for r in report.results if r.error))
        best = min(p50, key=p50.get)
        entry = record(name, best, model.file(best).sha256, p50, input_hw, threads, command)
        others = ", ".join(f"{f} {ms:.1f}" for f, ms in sorted(p50.items(), key=lambda kv: kv[1]) if f != best)
        say(f"{name}: {best} ({p50[best]:.1f} ms per frame, {threads} thread(s))"
            + (f"; {others} ms" if others else ""))
        out.append((name, entry))
    say(f"cached in {cache_file()} (device key {device_key()[0]})")
    return out
