"""Two local workers on loopback under MultiWorkerMirroredStrategy (TF_CONFIG)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r"""
import json, os, sys
import keras
import numpy as np
from sagan_tf import loop, training

out, steps = sys.argv[1], int(sys.argv[2])
stop_at = int(os.environ.get("STOP_AT", 0))
if stop_at:  # this worker alone asks to stop early, as --max_minutes may
    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.step.numpy()) >= stop_at:
                self.model.stop_training = True

    real_train = loop.train
    loop.train = lambda *a: real_train(*a[:4], list(a[4]) + [StopAt()])
config = training.TrainConfig.from_flat(
    strategy="multi_worker", preset="dcgan_32", base_channels=8, z_dim=16, batch_size=8,
    steps=steps, log_every=2, sample_every=4, checkpoint_every=2,
    workdir=os.environ["RUN_DIR"], export_dir=os.environ["EXPORT_DIR"])
result = training.run(config)
gan = result["gan"]
np.savez(out + ".npz", *[np.asarray(w) for w in gan.generator.weights + gan.discriminator.weights])
with open(out + ".json", "w") as f:
    json.dump({"step": result["step"], "logs": result["logs"],
               "export": result.get("export")}, f)
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _train_two_workers(tmp_path, steps, tag, stop_worker1_at=0):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=ROOT, TMPDIR=str(tmp_path / "tmp"),
                   STOP_AT=str(stop_worker1_at if index == 1 else 0), RUN_DIR=str(tmp_path / "run"), EXPORT_DIR=str(tmp_path / "savedmodels"),
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                         "task": {"type": "worker", "index": index}}))
        out = str(tmp_path / f"{tag}_worker{index}")
        log = open(out + ".log", "w")
        procs.append((subprocess.Popen([sys.executable, str(script), out, str(steps)], env=env,
                                       stdout=log, stderr=subprocess.STDOUT), out))
    results = []
    for proc, out in procs:
        try:
            rc = proc.wait(timeout=400)
        finally:
            for p, _ in procs:
                if p.poll() is None:
                    p.kill()
        with open(out + ".log") as f:
            assert rc == 0, f.read()[-3000:]
        with open(out + ".json") as f:
            result = json.load(f)
        result["weights"] = list(np.load(out + ".npz").values())
        results.append(result)
    return results


def test_two_workers_on_loopback_train_in_lockstep_and_resume(tmp_path):
    (tmp_path / "tmp").mkdir()
    chief, other = _train_two_workers(tmp_path, steps=4, tag="first")
    assert chief["step"] == other["step"] == 4
    # Logs are global means, so both workers see the same numbers.
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert np.isfinite(chief["logs"][key])
        np.testing.assert_allclose(other["logs"][key], chief["logs"][key], rtol=1e-6)
    # All-reduced updates: weights, batch-norm statistics and spectral-norm u agree.
    assert len(chief["weights"]) == len(other["weights"])
    for a, b in zip(chief["weights"], other["weights"]):
        np.testing.assert_allclose(b, a, atol=1e-6)
    run = tmp_path / "run"
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-4")
    assert sorted(os.listdir(run / "samples")) == ["step_0000004.png"]
    # Only the chief exports; the other worker's scratch checkpoints are gone.
    assert chief["export"].endswith(os.path.join("savedmodels", "run", "1"))
    assert other["export"] is None
    assert os.listdir(tmp_path / "savedmodels" / "run") == ["1"]
    assert os.listdir(tmp_path / "tmp") == []

    # Both workers resume from the chief's checkpoint and continue the count. The
    # other worker asks to stop at step 6: the chief stops there too.
    chief, other = _train_two_workers(tmp_path, steps=10, tag="second", stop_worker1_at=6)
    assert chief["step"] == other["step"] == 6
    for a, b in zip(chief["weights"], other["weights"]):
        np.testing.assert_allclose(b, a, atol=1e-6)
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-6")
