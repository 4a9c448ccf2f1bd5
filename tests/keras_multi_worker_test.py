"""The Keras restore guard under MultiWorkerMirroredStrategy: two real worker
processes on 127.0.0.1 per scenario (TF_CONFIG, free ports): tf-keras with
the guard callback in `fit`, Keras 3 with `guarded_restore.restore` (Keras 3's
`fit` does not run under MultiWorkerMirroredStrategy). Every worker shares its verdict; a
disagreement stops every worker before the first batch, with the same
message. All scenarios' workers run at once."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

from conftest import REPO
from conftest import keras3_available

# A worker: builds the model in the strategy, fits one epoch with the guard;
# prints one JSON line, or the od_guard error (exit code as the error says).
WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    flavour, prefix = sys.argv[1:3]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if flavour == "keras3":
      import keras
    else:
      import tf_keras as keras
      from od_guard.keras.tf_keras_callbacks import TfKerasRestoreGuard as Guard
    from od_guard import errors
    from od_guard.keras import guarded_restore
    with strategy.scope():
      inputs = keras.Input((4,))
      x = keras.layers.Dense(8, name="features")(inputs)
      model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
      model.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensor_slices(
        (np.ones((8, 4), "float32"), np.ones((8, 3), "float32"))).batch(4)
    try:
      if flavour == "keras3":  # Keras 3's own fit does not run under this strategy
        report = guarded_restore.restore(model, prefix, quiet=True, consensus_timeout=120)
      else:
        guard = Guard(prefix, quiet=True, consensus_timeout=120)
        model.fit(data, epochs=1, verbose=0, callbacks=[guard])
        report = guard.report
    except errors.OdGuardError as e:
      print(f"od_guard: error: {type(e).__name__}: {e.format()}", file=sys.stderr, flush=True)
      sys.stdout.flush()
      os._exit(e.exit_code)  # peers may have left: no wait at exit
    print(json.dumps({"decision": report.verdict.decision,
                      "strategy": report.strategy,
                      "verified": report.finding("restore_verified") is not None}))
    sys.stdout.flush()
""")


def _save(flavour: str, prefix: str, seed: int) -> str:
  """The workers' model, saved with tf.train.Checkpoint (random weights from `seed`)."""
  import tensorflow as tf

  if flavour == "keras3":
    import keras
  else:
    import tf_keras as keras
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((4,))
  x = keras.layers.Dense(8, name="features")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
  model.compile(optimizer="sgd", loss="mse")  # as the workers' (its optimizer is tracked)
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  return tf.train.Checkpoint(model=model).write(prefix)


def _flavours():
  return ["keras3", "tf_keras"] if keras3_available() else ["tf_keras"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tf):
  from od_guard.testing import multi_worker

  root = tmp_path_factory.mktemp("keras_multi_worker")
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
  plans = {}
  for flavour in _flavours():
    good = _save(flavour, str(root / flavour / "shared" / "ckpt-1"), seed=1)
    plans[(flavour, "pass")] = [good, good]
    if flavour == "tf_keras":
      # Worker 1's host has another copy (other weights) at the same names.
      plans[(flavour, "differ")] = [
        _save(flavour, str(root / flavour / "differ" / "host0" / "ckpt-1"), seed=1),
        _save(flavour, str(root / flavour / "differ" / "host1" / "ckpt-1"), seed=2),
      ]
    else:
      # Worker 1's host has none.
      plans[(flavour, "missing")] = [
        _save(flavour, str(root / flavour / "missing" / "host0" / "ckpt-1"), seed=1),
        str(root / flavour / "missing" / "host1" / "ckpt-1"),
      ]
  started = {}
  for (flavour, scenario), prefixes in plans.items():
    addresses = multi_worker.cluster(2)
    started[(flavour, scenario)] = [
      multi_worker.start(
        [sys.executable, "-c", WORKER, flavour, prefix],
        addresses,
        i,
        env=env,
        log_dir=str(root / "logs" / flavour / scenario),
      )
      for i, prefix in enumerate(prefixes)
    ]
  everyone = multi_worker.wait([w for ws in started.values() for w in ws], 300)
  return {key: [everyone.pop(0) for _ in workers] for key, workers in started.items()}


def _error(result) -> str:
  assert result.returncode == 1, (result.returncode, result.output[-4000:])
  assert "Traceback" not in result.stderr, result.stderr[-4000:]
  return result.stderr[result.stderr.index("od_guard: error: ") :]


@pytest.mark.parametrize("flavour", _flavours())
def test_workers_that_agree_restore_and_train(runs, flavour):
  w0, w1 = runs[(flavour, "pass")]
  results = []
  for r in (w0, w1):
    assert r.returncode == 0, r.output[-4000:]
    results.append(json.loads(r.stdout.strip().splitlines()[-1]))
  assert results[0] == results[1]
  assert results[0]["decision"] == "pass"
  assert results[0]["strategy"] == "MultiWorkerMirroredStrategy (2 replicas)"
  assert results[0]["verified"]


def test_tf_keras_workers_with_different_checkpoints_all_stop(runs):
  e0, e1 = (_error(r) for r in runs[("tf_keras", "differ")])
  assert e0 == e1  # the same message on both workers
  assert "WorkersDisagreeError: The workers read different checkpoints at the same path" in e0
  assert "worker 0 (" in e0 and "worker 1 (" in e0


def test_keras3_checkpoint_missing_on_one_worker_stops_every_worker(runs):
  if not keras3_available():
    pytest.skip("Keras 3 is the modern environment's")
  e0, e1 = (_error(r) for r in runs[("keras3", "missing")])
  assert e0 == e1
  assert "WorkersDisagreeError: The preflight failed on worker 1 of 2 workers" in e0
  assert "worker 1 (" in e0 and "ERROR [CheckpointNotFoundError]" in e0
  assert "shared file system" in e0


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
