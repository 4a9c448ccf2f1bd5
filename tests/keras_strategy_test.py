"""The Keras guard inside distribution strategies, on CPU: MirroredStrategy
over two logical devices, and MultiWorkerMirroredStrategy with two local
worker processes on 127.0.0.1."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from conftest import keras3_available

# A worker: builds a model in the strategy, fits it one epoch with the guard,
# prints one JSON line. argv: flavour, strategy ('mirrored' | 'multiworker'),
# checkpoint, log_dir; TF_CONFIG comes from the environment for multiworker.
WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    flavour, kind, prefix, log_dir = sys.argv[1:5]
    if kind == "mirrored":
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
      strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if flavour == "keras3":
      import keras
    else:
      import tf_keras as keras
    from od_guard.keras import callbacks
    from od_guard.keras import guarded_restore
    Guard = callbacks.RestoreGuard if flavour == "keras3" else callbacks.TfKerasRestoreGuard
    with strategy.scope():
      inputs = keras.Input((4,))
      x = keras.layers.Dense(8, name="features")(inputs)
      model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
      model.compile(optimizer="sgd", loss="mse")
    if prefix == "save":
      print(json.dumps({"prefix": tf.train.Checkpoint(model=model).save(log_dir + "/ckpt")}))
      sys.exit(0)
    data = tf.data.Dataset.from_tensor_slices(
        (np.ones((8, 4), "float32"), np.ones((8, 3), "float32"))).batch(4)
    guard = Guard(prefix, log_dir=log_dir, quiet=True)
    model.fit(data, epochs=1, verbose=0, callbacks=[guard])
    verified = guard.report.finding("restore_verified")
    print(json.dumps({"decision": guard.report.verdict.decision,
                      "strategy": guard.report.strategy,
                      "verified": verified.title if verified else None,
                      "restored": len(guard.report.restore.restored)}))
""")


def _run(args, env=None, timeout=300):
  full = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
  return subprocess.Popen(
    [sys.executable, "-c", WORKER, *args],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=full,
  )


def _result(proc, timeout=300) -> dict:
  out, err = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1])


def _flavours():
  return ["keras3", "tf_keras"] if keras3_available() else ["tf_keras"]


@pytest.mark.parametrize("flavour", _flavours())
def test_mirrored_strategy_on_two_logical_cpus(flavour, tmp_path):
  saved = _result(_run([flavour, "mirrored", "save", str(tmp_path / "saved")]))
  result = _result(_run([flavour, "mirrored", saved["prefix"], str(tmp_path / "logs")]))
  assert result["decision"] == "pass"
  assert result["strategy"] == "MirroredStrategy (2 replicas)"
  assert result["verified"] == (
    f"Verified: {result['restored']} variables hold the checkpoint's values on 2 replicas."
  )


def _free_ports(n: int) -> list[int]:
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def test_multiworker_mirrored_strategy_two_local_workers(tmp_path):
  flavour = "tf_keras"
  saved = _result(_run([flavour, "mirrored", "save", str(tmp_path / "saved")]))
  ports = _free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  log_dir = tmp_path / "logs"
  procs = [
    _run(
      [flavour, "multiworker", saved["prefix"], str(log_dir)],
      env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
    )
    for i in range(2)
  ]
  results = [_result(p) for p in procs]
  assert results[0] == results[1]  # every worker reaches the same verdict
  assert results[0]["decision"] == "pass"
  assert results[0]["strategy"] == "MultiWorkerMirroredStrategy (2 replicas)"
  events = glob.glob(str(log_dir / "train" / "events.out.tfevents.*"))
  assert len(events) == 1  # only the chief wrote TensorBoard


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
