"""The model's identity travels with the model: the :class:`ModelConfig` inside the ``.keras`` archive.

A ``.keras`` file is a zip archive; ``deconv-edge train`` adds one entry, :data:`CONFIG_ENTRY`, holding the
ModelConfig it built the model from. Keras ignores entries it does not know, so the file still loads (in safe
mode) anywhere, and ``convert`` reads the config back instead of guessing it from layer names. Files written
before the entry existed have none: :func:`read_config` returns ``None`` and the caller falls back.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Optional

from .base import ModelConfig

CONFIG_ENTRY = "deconv_edge/model_config.json"
SCHEMA = 1


def embed_config(path: str | Path, config: ModelConfig) -> None:
    """Add ``config`` to the ``.keras`` archive at ``path`` (written by ``model.save`` just before)."""
    payload = json.dumps({"schema": SCHEMA, "model_config": config.to_dict()}, sort_keys=True)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        if CONFIG_ENTRY in zf.namelist():
            raise ValueError(f"{path} already holds {CONFIG_ENTRY}")
        zf.writestr(CONFIG_ENTRY, payload)


def save_model(model, path: str | Path, config: ModelConfig) -> None:
    """``model.save(path)`` with ``config`` stored inside."""
    model.save(str(path))
    embed_config(path, config)


def read_config(path: str | Path) -> Optional[ModelConfig]:
    """The ModelConfig stored in a ``.keras`` file, or ``None`` (an older file, or not a zip archive)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if CONFIG_ENTRY not in zf.namelist():
                return None
            data = json.loads(zf.read(CONFIG_ENTRY))
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in (data.get("model_config") or {}).items() if k in known})
