"""Training on more than one device or machine, with TensorFlow's own distribution engine.

* One machine with several GPUs: ``tf.distribute.MirroredStrategy`` (every local GPU).
* Several machines: ``tf.distribute.MultiWorkerMirroredStrategy``, from ``TF_CONFIG`` or from
  ``--workers HOST:PORT,HOST:PORT --worker-index I`` (which this module turns into ``TF_CONFIG``). Worker 0
  (or the ``chief`` task of a ``TF_CONFIG``) is the chief.

The training loop (:func:`deconv_edge_train.train.train`) stays Keras' own ``train_on_batch`` step: the model, the
optimizer and the compile happen inside ``strategy.scope()``, so Keras runs each step through
``strategy.run`` and averages the gradients over all replicas. ``--batch`` is the **global** batch: each worker
cuts ``batch / workers`` patches per step (and splits them over its local replicas).

What the workers must agree on, they get from the chief once per step (one small all-reduce): the elapsed time
that drives the learning-rate schedule and the time budget, and whether to stop (a signal on any worker, or the
end of a sitting), so every worker runs the same steps and stops at the same one. Only the chief writes
(``train_config.json``, checkpoints, ``log.csv``, ``model.keras``, ``report.json``); on ``--resume`` the chief
reads the checkpoint and sends the weights, optimizer state and step to the others, so their ``--out`` need
not be shared storage.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from deconv_edge_core.errors import UserError

STRATEGIES = ("auto", "none", "mirrored", "multi-worker")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class ClusterConfig:
    """How a run is spread.

    Attributes:
        strategy: ``auto`` (multi-worker when a cluster is given, mirrored with more than one local GPU, else
            none), ``none``, ``mirrored`` or ``multi-worker``.
        workers: ``HOST:PORT`` of every worker, the same list on each (empty: ``TF_CONFIG`` or one machine).
        worker_index: this worker's place in ``workers``.
    """

    strategy: str = "auto"
    workers: tuple = ()
    worker_index: Optional[int] = None

    def validate(self) -> ClusterConfig:
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown strategy '{self.strategy}'; valid: {', '.join(STRATEGIES)}")
        for w in self.workers:
            m = _HOST_PORT.match(w)
            if not m or not 0 < int(m.group(2)) < 65536:
                raise UserError(f"--workers: '{w}' is not HOST:PORT")
        if len(set(self.workers)) != len(self.workers):
            raise UserError("--workers lists a worker twice")
        if self.workers and self.worker_index is None:
            raise UserError("--workers needs --worker-index (0 for the chief)")
        if self.worker_index is not None and not self.workers:
            raise UserError("--worker-index needs --workers HOST:PORT,HOST:PORT")
        if self.workers and not 0 <= self.worker_index < len(self.workers):
            raise UserError(f"--worker-index {self.worker_index} is not in 0..{len(self.workers) - 1}")
        if self.strategy in ("none", "mirrored") and self.workers:
            raise UserError(f"--strategy {self.strategy} runs on one machine; drop --workers or use multi-worker")
        return self


def parse_workers(text: str) -> tuple:
    """``"10.0.0.1:12345,10.0.0.2:12345"`` → a tuple of ``HOST:PORT``."""
    return tuple(w.strip() for w in text.split(",") if w.strip())


@dataclass
class Distribution:
    """The strategy a run uses, and what the training loop needs to know about it."""

    strategy: object = None         # a tf.distribute.Strategy, or None (plain Keras, any backend)
    kind: str = "none"
    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True
    replicas: int = 1

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def local_batch(self, global_batch: int) -> int:
        """Patches this worker cuts per step.

        Raises:
            UserError: the global batch does not split evenly over the replicas.
        """
        if global_batch % self.replicas:
            raise UserError(f"--batch {global_batch} (the global batch) must be a multiple of the {self.replicas} "
                            f"replicas ({self.num_workers} worker(s))")
        return global_batch // self.num_workers

    def describe(self, global_batch: int) -> dict:
        return {"strategy": self.kind, "workers": self.num_workers, "worker_index": self.worker_index,
                "replicas": self.replicas, "global_batch": global_batch,
                "per_replica_batch": global_batch // self.replicas}

    # -- agreement between workers -----------------------------------------------------------------------
    def _sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of ``values`` over every replica of every worker."""
        import tensorflow as tf

        if not hasattr(self, "_sum_fn"):
            strategy = self.strategy

            @tf.function
            def fn(x):
                def replica(v):
                    ctx = tf.distribute.get_replica_context()
                    # One contribution per worker: the first local replica carries the value.
                    first = tf.cast(tf.equal(ctx.replica_id_in_sync_group % (ctx.num_replicas_in_sync //
                                                                              self.num_workers), 0), v.dtype)
                    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, v * first)

                return strategy.run(replica, args=(x,))

            self._sum_fn = fn
        out = self._sum_fn(tf.constant(values, dtype=tf.float64))
        return np.asarray(self.strategy.experimental_local_results(out)[0])

    def agree(self, elapsed_s: float, flags: Sequence[bool]) -> tuple:
        """``(chief's elapsed seconds, each flag set on any worker)``, the same on every worker."""
        if self.num_workers == 1:
            return elapsed_s, tuple(bool(f) for f in flags)
        got = self._sum(np.array([elapsed_s if self.is_chief else 0.0, *(1.0 if f else 0.0 for f in flags)]))
        return float(got[0]), tuple(bool(v > 0) for v in got[1:])

    def broadcast(self, variables: Sequence, scalars: Sequence[float]) -> list:
        """Give every worker the chief's ``variables`` (assigned in place) and ``scalars`` (returned)."""
        if self.num_workers == 1:
            return list(scalars)
        flat = [np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64).ravel() for v in variables]
        head = np.asarray(scalars, dtype=np.float64)
        payload = np.concatenate([head, *flat]) if flat else head
        got = self._sum(payload if self.is_chief else np.zeros_like(payload))
        pos = len(head)
        for v, f in zip(variables, flat):
            v.assign(got[pos:pos + f.size].reshape(tuple(v.shape)).astype(np.dtype(v.dtype.name if hasattr(
                v.dtype, "name") else str(v.dtype))))
            pos += f.size
        return got[:len(head)].tolist()


def _tf_config_from(cluster: ClusterConfig) -> Optional[dict]:
    if cluster.workers:
        return {"cluster": {"worker": list(cluster.workers)}, "task": {"type": "worker", "index": cluster.worker_index}}
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        cfg = json.loads(text)
        cfg["cluster"], cfg["task"]["type"], int(cfg["task"]["index"])
    except (ValueError, KeyError, TypeError):
        raise UserError("TF_CONFIG is not valid JSON with 'cluster' and 'task' {type, index}") from None
    return cfg


def make_distribution(cluster: Optional[ClusterConfig]) -> Distribution:
    """Create the strategy (before any other TensorFlow work: collectives are configured at start-up).

    Raises:
        UserError: bad cluster options, a strategy on a Keras backend other than TensorFlow, or a
            ``mirrored`` strategy with a single device.
    """
    cluster = (cluster or ClusterConfig()).validate()
    tf_config = _tf_config_from(cluster) if cluster.strategy in ("auto", "multi-worker") else None
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    kind = cluster.strategy
    if kind == "auto":
        kind = "multi-worker" if tf_config else "none"
        if kind == "none" and backend == "tensorflow":
            from .quiet import import_tensorflow

            if len(import_tensorflow().config.list_physical_devices("GPU")) > 1:
                kind = "mirrored"
    if kind == "none":
        return Distribution()
    if backend != "tensorflow":
        raise UserError(f"--strategy {kind} needs Keras on TensorFlow (KERAS_BACKEND={backend}); "
                        "unset KERAS_BACKEND or train on one device")
    from .quiet import import_tensorflow

    tf = import_tensorflow()
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        if strategy.num_replicas_in_sync < 2:
            raise UserError("--strategy mirrored found one device only; drop it (or use multi-worker across hosts)")
        return Distribution(strategy, "MirroredStrategy", 1, 0, True, strategy.num_replicas_in_sync)
    if not tf_config:
        raise UserError("--strategy multi-worker needs TF_CONFIG or --workers HOST:PORT,... --worker-index I")
    os.environ["TF_CONFIG"] = json.dumps(tf_config)
    workers = len(tf_config["cluster"].get("worker", [])) + len(tf_config["cluster"].get("chief", []))
    task_type, index = tf_config["task"]["type"], int(tf_config["task"]["index"])
    chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in tf_config["cluster"])
    rank = index + (1 if task_type == "worker" and "chief" in tf_config["cluster"] else 0)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Distribution(strategy, "MultiWorkerMirroredStrategy", workers, rank, chief, strategy.num_replicas_in_sync)


def adapt_model(dist: Distribution, model) -> None:
    """Work around Keras 3's multi-worker reduction of the step's logs.

    Under ``MultiWorkerMirroredStrategy`` Keras reduces each log with ``strategy.reduce("MEAN", v, axis=0)``,
    which fails on the scalar loss (``Invalid reduction dimension 0``); the step's logs are given a length-1
    axis so that reduction is the mean over the replicas it was meant to be.
    """
    if dist.kind != "MultiWorkerMirroredStrategy":
        return
    import tensorflow as tf

    step = model.train_step

    def train_step(data):
        return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

    model.train_step = train_step


def train_batch(dist: Distribution, model, lr_b: np.ndarray, hr_b: np.ndarray) -> float:
    """One Keras train step on this worker's batch; returns the loss.

    With one replica per worker that is ``model.train_on_batch``. With several local replicas (GPUs) the batch
    is cut into per-replica slices and fed to Keras' own train function, which runs the step on each replica
    with its slice (``train_on_batch`` would give every replica the whole batch).
    """
    local = dist.replicas // dist.num_workers
    if dist.strategy is None or local <= 1:
        return float(np.asarray(model.train_on_batch(lr_b, hr_b)).mean())
    per = len(lr_b) // local

    def part(arr):
        return dist.strategy.experimental_distribute_values_from_function(
            lambda ctx: arr[(ctx.replica_id_in_sync_group % local) * per:(ctx.replica_id_in_sync_group % local + 1) * per])

    if model.train_function is None:
        # What train_on_batch does first; Keras' symbolic build takes plain tensors, so give it one slice.
        model._maybe_symbolic_build(data_batch=(lr_b[:per], hr_b[:per], None))
    model.make_train_function()
    model.reset_metrics()
    logs = model.train_function(iter([(part(lr_b), part(hr_b), None)]))
    return float(np.asarray(logs["loss"]).mean())
