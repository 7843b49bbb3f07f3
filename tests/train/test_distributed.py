"""Training on more than one machine: two TensorFlow workers on 127.0.0.1 (CPU, MultiWorkerMirroredStrategy).

The run is interrupted on the non-chief worker, both stop at the same step, the chief's checkpoint resumes on
both, and the chief's model loads and evaluates. Only the chief writes; the other worker's ``--out`` stays
empty, so resuming cannot have read its files: the chief sent the state.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deconv_edge_core.errors import UserError

from ..conftest import REPO, write_images

pytest.importorskip("tensorflow")


def _ports(n: int) -> list:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(data: Path, out: Path, workers: str, index: int, steps: int, log: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "KERAS_BACKEND")}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    argv = [sys.executable, "-m", "edge_runtime", "train", "--data", str(data), "--model", "fsrcnn-s", "--d", "8",
            "--s", "4", "--m", "1", "--batch", "4", "--patch", "16", "--steps", str(steps), "--out", str(out),
            "--workers", workers, "--worker-index", str(index), "--quiet", *extra]
    return subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=out.parent)


def _wait(procs, timeout: float = 300) -> list:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.mark.slow
def test_two_workers_interrupted_resume_and_the_chiefs_model_evaluates(tmp_path):
    data = write_images(tmp_path / "data", n=2)
    chief, other = tmp_path / "chief", tmp_path / "other"
    workers = ",".join(f"127.0.0.1:{p}" for p in _ports(2))
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]

    # A long run, checkpointed often, interrupted on the non-chief worker once a checkpoint exists.
    procs = [_start(data, d, workers, i, 100000, logs[i], "--checkpoint-minutes", "0.002")
             for i, d in enumerate((chief, other))]
    deadline = time.monotonic() + 240
    while not (chief / "checkpoint.json").is_file():
        assert all(p.poll() is None for p in procs), "".join(f.read_text() for f in logs)
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGINT)
    assert _wait(procs) == [2, 2], "".join(f.read_text() for f in logs)
    stopped = [int(f.read_text().split("interrupted at step ")[1].split(";")[0]) for f in logs]
    assert stopped[0] == stopped[1] > 0, stopped  # both stopped at the same step
    assert json.loads((chief / "checkpoint.json").read_text())["step"] == stopped[0]
    assert not other.exists() or not any(other.iterdir()), "only the chief writes"

    # Resume on both workers (the other one has no files: the chief sends weights, optimizer and step).
    total = stopped[0] + 3
    procs = [_start(data, d, workers, i, total, logs[i], "--resume") for i, d in enumerate((chief, other))]
    assert _wait(procs) == [0, 0], "".join(f.read_text() for f in logs)
    summary = [f.read_text().strip().splitlines()[-1] for f in logs]
    for line in summary:  # --quiet hides the bar, not the summary line
        assert line.startswith(f"trained {total} steps on 2 worker(s), 2 replica(s), global batch 4"), line
    report = json.loads((chief / "report.json").read_text())
    assert report["steps"] == total and report["finished"]
    assert report["distribution"] == {"strategy": "MultiWorkerMirroredStrategy", "workers": 2, "worker_index": 0,
                                      "replicas": 2, "global_batch": 4, "per_replica_batch": 2}
    steps_logged = [int(r.split(",")[0]) for r in (chief / "log.csv").read_text().splitlines()[1:]]
    assert steps_logged == sorted(steps_logged) and steps_logged[-1] <= total
    assert not other.exists() or not any(other.iterdir())

    # The chief's model loads (safe mode) and evaluates per PROTOCOL.md.
    from deconv_edge_train.evaluate import evaluate

    res = evaluate(str(chief / "model.keras"), [str(data)], 2)
    assert np.isfinite(res.psnr_db) and res.psnr_db > 15


@pytest.mark.parametrize("kwargs,needle", [
    ({"workers": ("a:1", "b:2")}, "--worker-index"),
    ({"worker_index": 0}, "needs --workers"),
    ({"workers": ("a:1", "b:2"), "worker_index": 2}, "not in 0..1"),
    ({"workers": ("a", "b:2"), "worker_index": 0}, "HOST:PORT"),
    ({"workers": ("a:1", "a:1"), "worker_index": 0}, "twice"),
    ({"strategy": "mirrored", "workers": ("a:1",), "worker_index": 0}, "one machine"),
    ({"strategy": "ring"}, "valid: auto"),
])
def test_cluster_options_are_checked(kwargs, needle):
    from deconv_edge_train.distribute import ClusterConfig

    with pytest.raises(UserError, match=needle):
        ClusterConfig(**kwargs).validate()


def test_global_batch_must_split_over_the_replicas():
    from deconv_edge_train.distribute import Distribution

    dist = Distribution(strategy=None, kind="MultiWorkerMirroredStrategy", num_workers=2, replicas=2)
    assert dist.local_batch(8) == 4
    with pytest.raises(UserError, match="multiple of the 2 replicas"):
        dist.local_batch(5)


MIRRORED = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from deconv_edge_train.distribute import Distribution, train_batch
from deconv_edge_train.models import ModelConfig, build_model

rng = np.random.default_rng(0)
x = rng.random((4, 16, 16, 1), dtype=np.float32)
y = rng.random((4, 32, 32, 1), dtype=np.float32)
cfg = ModelConfig(name="fsrcnn-s", scale=2, d=8, s=4, m=1)
keras.utils.set_random_seed(0)
plain = build_model(cfg)
start = [v.numpy() for v in plain.weights]
plain.compile(optimizer=keras.optimizers.SGD(0.1), loss="mean_squared_error")
plain.train_on_batch(x, y)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
dist = Distribution(strategy, "MirroredStrategy", 1, 0, True, 2)
with dist.scope():
    mirrored = build_model(cfg)
    for v, w in zip(mirrored.weights, start):
        v.assign(w)
    mirrored.compile(optimizer=keras.optimizers.SGD(0.1), loss="mean_squared_error")
train_batch(dist, mirrored, x, y)
diff = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(plain.weights, mirrored.weights))
moved = max(float(np.abs(a.numpy() - b).max()) for a, b in zip(plain.weights, start))
print(diff, moved)
"""


@pytest.mark.slow
def test_mirrored_step_splits_the_batch_over_replicas(tmp_path):
    """Two local replicas (two logical CPUs) each take half the batch: the step equals one on the whole batch."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "KERAS_BACKEND")}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-c", MIRRORED], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    diff, moved = map(float, r.stdout.split())
    assert moved > 1e-4 and diff < 1e-6, (diff, moved)
