"""Training checkpoints: ``ckpt-<step>/`` folders and the ``checkpoint.json`` pointer that names the newest.

Every Keras backend reads them (compressed numpy archives, no TensorFlow format), so a run resumes under
TensorFlow or JAX, and the campaign commits them to git.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import write_json_atomic


class Checkpointer:
    """Complete checkpoints in ``ckpt-<step>/``; ``checkpoint.json`` names the newest (atomic switch).

    A checkpoint is ``weights.npz`` (the model's weights in layer order) and ``optimizer.npz``, compressed numpy
    archives that every Keras backend reads (small enough to commit: the campaign keeps its state in git).
    Older checkpoints hold ``model.weights.h5`` instead and still restore.
    """

    def __init__(self, out: Path, keep: int = 1):
        self.out, self.keep = out, keep
        self.pointer = out / "checkpoint.json"

    def latest(self) -> Optional[dict]:
        if not self.pointer.is_file():
            return None
        try:
            state = json.loads(self.pointer.read_text())
            if any((self.out / state["dir"] / n).is_file() for n in ("weights.npz", "model.weights.h5")):
                return state
        except (ValueError, KeyError):
            pass
        raise UserError(f"checkpoint in '{self.out}' is damaged; delete {self.pointer} to start over")

    def save(self, model, optimizer, step: int, elapsed_s: float) -> None:
        name = f"ckpt-{step:08d}"
        final = self.out / name
        tmp = self.out / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.savez_compressed(tmp / "weights.npz", *[np.asarray(w) for w in model.get_weights()])
        np.savez_compressed(tmp / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        write_json_atomic(self.pointer, {"dir": name, "step": step, "elapsed_s": elapsed_s})
        old = sorted(p for p in self.out.glob("ckpt-*") if p.is_dir() and p.name != name)
        for p in old[: max(0, len(old) - (self.keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)

    def restore(self, model, optimizer, state: dict) -> None:
        ckpt = self.out / state["dir"]
        load_checkpoint_weights(model, ckpt)
        optimizer.build(model.trainable_variables)
        with np.load(ckpt / "optimizer.npz") as arrays:
            values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        if len(values) != len(optimizer.variables):
            raise UserError(f"optimizer state in '{ckpt}' does not match the model; start a new --out")
        for var, val in zip(optimizer.variables, values):
            var.assign(val)


def load_checkpoint_weights(model, ckpt: Path) -> None:
    """Load a checkpoint folder's model weights into ``model`` (``weights.npz``, or an older ``.h5``)."""
    if (ckpt / "weights.npz").is_file():
        with np.load(ckpt / "weights.npz") as arrays:
            values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        if [v.shape for v in values] != [tuple(w.shape) for w in model.get_weights()]:
            raise UserError(f"checkpoint '{ckpt}' does not hold this model's weights; start a new --out")
        model.set_weights(values)
    else:
        model.load_weights(str(ckpt / "model.weights.h5"))
