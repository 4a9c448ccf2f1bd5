"""The real restore, verified on every replica before step one: the device-side
fingerprint against the file side, and the drop-in under MirroredStrategy on
two logical CPUs (a good fine-tune; a replica the restore left wrong)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from od_guard.checkpoint import verify

from conftest import REPO

DTYPES = ("float32", "float16", "bfloat16", "int64", "bool", "float64", "int32", "uint8")


def _values(tf, dtype: str):
  base = np.random.default_rng(7).standard_normal((33, 7)) * 50
  if dtype == "bool":
    return tf.constant(base > 0)
  return tf.cast(tf.constant(base.astype("float32")), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_fingerprint_equals_the_file_side(tf, dtype):
  from od_guard.restore import replica_values

  value = _values(tf, dtype)
  raw = value.numpy().tobytes()
  streamed = verify._Digester(dtype)
  width = value.dtype.size
  for start in range(0, len(raw), 5 * width):  # chunked: the element index runs on
    streamed.add(np, raw[start : start + 5 * width])
  on_device = replica_values.device_digest(tf.Variable(value))
  assert on_device == verify.digest_bytes(raw, dtype) == streamed.digest()


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_flipped_bit_changes_the_fingerprint(tf, dtype):
  from od_guard.restore import replica_values

  value = _values(tf, dtype)
  flipped = bytearray(value.numpy().tobytes())
  flipped[value.dtype.size * 40] ^= 1  # the lowest bit of element 40
  changed = tf.constant(
    np.frombuffer(bytes(flipped), dtype=value.numpy().dtype).reshape(value.shape)
  )
  assert replica_values.device_digest(tf.Variable(changed)) != replica_values.device_digest(
    tf.Variable(value)
  )
  assert verify.digest_bytes(bytes(flipped), dtype) != verify.digest_bytes(
    value.numpy().tobytes(), dtype
  )


def test_streamed_digests_match_a_saved_checkpoint(tf, tmp_path):
  from od_guard.restore import replica_values

  variables = {d: tf.Variable(_values(tf, d)) for d in DTYPES}
  prefix = tf.train.Checkpoint(**variables).save(str(tmp_path / "ckpt"))
  digests = verify.verify(prefix, digests=True).digests
  for d, v in variables.items():
    assert digests[f"{d}/.ATTRIBUTES/VARIABLE_VALUE"] == replica_values.device_digest(v), d


# The drop-in under MirroredStrategy on two logical CPUs. PERTURB names a
# variable path whose replica 1 a test-only wrapper changes after the OD API's
# own restore ran (as a buggy restore hook would).
DROP_IN = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from absl import app
    from od_guard.odapi import compat
    from od_guard.odapi import model_main_tf2 as drop_in
    from od_guard.restore import live_graph
    compat.apply()
    from object_detection import model_lib_v2

    drop_in._strategy = lambda fv, tf: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    perturb = os.environ.get("PERTURB")
    if perturb:
      original = model_lib_v2.load_fine_tune_checkpoint

      def perturbing_load(model, *args, **kwargs):
        original(model, *args, **kwargs)
        for obj, path in live_graph.walk({"model": model}):
          if path == perturb:
            replica = tf.distribute.get_strategy().experimental_local_results(obj)[1]
            replica.assign(replica + tf.ones_like(replica))

      model_lib_v2.load_fine_tune_checkpoint = perturbing_load
    drop_in.define_flags()
    app.run(drop_in.main, argv=["od_guard.model_main_tf2", *sys.argv[1:]])
""")
KERNEL = "model/_feature_extractor/classification_backbone/layer_with_weights-0/kernel"


def _drop_in(odapi_world, tmp_path, name: str, perturb: str = ""):
  model_dir = tmp_path / name
  config = odapi_world.write_config(name)
  proc = subprocess.Popen(
    [
      sys.executable,
      "-c",
      DROP_IN,
      f"--pipeline_config_path={config}",
      f"--model_dir={model_dir}",
      "--num_train_steps=1",
      "--num_steps_per_iteration=1",
      "--checkpoint_every_n=1",
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", PERTURB=perturb),
  )
  return proc, model_dir


@pytest.fixture(scope="module")
def runs(odapi_world, tmp_path_factory):
  """Both drop-in runs, started together (each spends most of its time importing)."""
  tmp = tmp_path_factory.mktemp("replica_verify")
  started = {
    "good": _drop_in(odapi_world, tmp, "good"),
    "perturbed": _drop_in(odapi_world, tmp, "perturbed", perturb=KERNEL),
  }
  out = {}
  for name, (proc, model_dir) in started.items():
    stdout, stderr = proc.communicate(timeout=600)
    out[name] = (proc.returncode, stdout, stderr, model_dir)
  return out


def _checkpoints(model_dir) -> list[str]:
  return sorted(glob.glob(os.path.join(model_dir, "ckpt-*.index")))


@pytest.mark.odapi
def test_good_fine_tune_verifies_restored_values_on_two_replicas(runs):
  code, stdout, stderr, model_dir = runs["good"]
  assert code == 0, stderr[-3000:]
  assert "restored values verified on 2 replicas" in stdout
  assert _checkpoints(model_dir)  # it trained
  report = json.loads((model_dir / "od_guard" / "report.json").read_text())
  (verified,) = [f for f in report["findings"] if f["code"] == "restore_verified"]
  assert "restored values verified on 2 replicas" in verified["title"]
  assert verified["data"]["replicas"] == 2 and not verified["data"]["mismatches"]
  assert verified["data"]["checked"] == len(report["restore"]["restored"])
  assert (
    "restored values verified on 2 replicas" in (model_dir / "od_guard" / "report.txt").read_text()
  )
  from tensorboard.backend.event_processing import event_multiplexer
  from tensorboard.util import tensor_util

  mux = event_multiplexer.EventMultiplexer()
  mux.AddRunsFromDirectory(str(model_dir))
  mux.Reload()
  (event,) = mux.Tensors("train", "od_guard/report")
  text = tensor_util.make_ndarray(event.tensor_proto).item().decode()
  assert event.step == 0 and "restored values verified on 2 replicas" in text


@pytest.mark.odapi
def test_a_replica_the_restore_left_wrong_stops_before_step_one(runs):
  code, stdout, stderr, model_dir = runs["perturbed"]
  assert code == 1, stderr[-3000:]
  assert "RestoredValuesMismatchError" in stderr
  assert f"{KERNEL} (key {KERNEL}/.ATTRIBUTES/VARIABLE_VALUE): replica(s) 1 on " in stderr
  assert "restored values verified" not in stdout
  assert _checkpoints(model_dir) == []  # no step-0 checkpoint, no step one
  report = json.loads((model_dir / "od_guard" / "report.json").read_text())
  assert report["verdict"]["decision"] == "fail"
  (wrong,) = [f for f in report["findings"] if f["code"] == "restore_not_applied"]
  assert wrong["data"]["mismatches"][0]["path"] == KERNEL
  assert wrong["data"]["mismatches"][0]["replicas"] == [1]


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
