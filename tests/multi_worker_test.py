"""Consensus before step one: `python -m od_guard.model_main_tf2 --num_workers=2`
as two real worker processes on 127.0.0.1 (TF_CONFIG, free ports), the tiny
SSD, MultiWorkerMirroredStrategy.

Every scenario's workers start together, at the start of the module (they
spend most of their time importing TensorFlow and waiting on each other), so
the module costs about as much as its slowest scenario."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.odapi

TIMEOUT = 25  # --guard_consensus_timeout of the scenario with a missing worker
WAIT = 300  # the whole module's budget for its worker processes


def _host(root, name: str, world, checkpoint: str | None) -> str:
  """A worker's 'host': its own directory, with a copy of `checkpoint` (or
  none) at <host>/pretrained/ckpt-1, and a config naming that path."""
  host = root / name
  (host / "pretrained").mkdir(parents=True)
  prefix = str(host / "pretrained" / "ckpt-1")
  if checkpoint is not None:
    for suffix in (".index", ".data-00000-of-00001"):
      shutil.copyfile(checkpoint + suffix, prefix + suffix)
  return world.write_config(f"{root.name}_{name}", checkpoint=prefix)


def _other_checkpoint(source: str, destination: str) -> str:
  """The same keys, shapes and object graph as `source`, one value different
  (save_counter), written by TF's own SaveV2: different bytes at the same names."""
  import tensorflow as tf

  reader = tf.train.load_checkpoint(source)
  names = sorted(reader.get_variable_to_dtype_map())
  values = [reader.get_tensor(n) for n in names]
  for i, n in enumerate(names):
    if n.startswith("save_counter"):
      values[i] = values[i] + 6
  os.makedirs(os.path.dirname(destination), exist_ok=True)
  tf.raw_ops.SaveV2(
    prefix=destination,
    tensor_names=names,
    shape_and_slices=[""] * len(names),
    tensors=[tf.constant(v) for v in values],
  )
  return destination


def _command(config: str, model_dir, *more: str) -> list[str]:
  return [
    sys.executable,
    "-m",
    "od_guard.model_main_tf2",
    f"--pipeline_config_path={config}",
    f"--model_dir={model_dir}",
    "--num_workers=2",
    *more,
  ]


@pytest.fixture(scope="module")
def runs(odapi_world, tmp_path_factory):
  """scenario -> [worker results], every scenario run at once."""
  from od_guard.testing import multi_worker

  root = tmp_path_factory.mktemp("multi_worker")
  good = odapi_world.checkpoints["detection"]
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
  plans = {}
  # (a) both see the same checkpoint: both pass, train two steps.
  from od_guard.testing import tiny_odapi

  # Two record files: the OD API shards the input by file across the workers.
  config = odapi_world.config(checkpoint=good)
  second = str(root / "train2.record")
  shutil.copyfile(odapi_world.record, second)
  config.train_input_reader.tf_record_input_reader.input_path.append(second)
  shared = tiny_odapi.write_pipeline_config(config, str(root / "mw_pass.config"))
  plans["pass"] = [
    _command(
      shared,
      root / "pass" / "train",
      "--num_train_steps=2",
      "--num_steps_per_iteration=1",
      "--checkpoint_every_n=2",
      "--guard_naming_mode=off",
    )
  ] * 2
  # (b) worker 1's host lacks the checkpoint.
  (root / "missing").mkdir()
  plans["missing"] = [
    _command(_host(root / "missing", "host0", odapi_world, good), root / "missing" / "train"),
    _command(_host(root / "missing", "host1", odapi_world, None), root / "missing" / "train"),
  ]
  # (c) each host has its own, different copy at the same names.
  (root / "differ").mkdir()
  other = _other_checkpoint(good, str(root / "other" / "ckpt-1"))
  plans["differ"] = [
    _command(_host(root / "differ", "host0", odapi_world, good), root / "differ" / "train"),
    _command(_host(root / "differ", "host1", odapi_world, other), root / "differ" / "train"),
  ]
  # (d) worker 1 never starts.
  plans["absent"] = [
    _command(shared, root / "absent" / "train", f"--guard_consensus_timeout={TIMEOUT}"),
    None,
  ]
  started = {}
  for name, commands in plans.items():
    addresses = multi_worker.cluster(2)
    started[name] = [
      multi_worker.start(c, addresses, i, env=env, log_dir=str(root / "logs" / name))
      for i, c in enumerate(commands)
      if c is not None
    ]
  everyone = multi_worker.wait([w for ws in started.values() for w in ws], WAIT)
  results = {name: [everyone.pop(0) for _ in workers] for name, workers in started.items()}
  results["root"] = root
  return results


def _stopped(result, codes=(1,)) -> str:
  assert result.returncode in codes, (result.returncode, result.output[-4000:])
  assert "Traceback" not in result.output, result.output[-4000:]
  assert "ModelBuildError" not in result.output
  return result.stderr


def test_both_pass_and_train(runs):
  w0, w1 = runs["pass"]
  for r in (w0, w1):
    assert r.returncode == 0, r.output[-4000:]
    assert "od_guard preflight: PASS" in r.stdout
    assert "restored values verified on 1 replica" in r.stdout  # the replica check ran under MWMS
  model_dir = runs["root"] / "pass" / "train"
  report = json.loads((model_dir / "od_guard" / "report.json").read_text())
  assert report["verdict"]["decision"] == "pass"
  assert report["strategy"].startswith("MultiWorkerMirroredStrategy (2 replicas)")
  assert list(model_dir.glob("ckpt-*.index"))  # the chief trained and saved


def test_a_missing_checkpoint_on_one_host_stops_both(runs):
  w0, w1 = runs["missing"]
  e0, e1 = _stopped(w0), _stopped(w1)
  for e in (e0, e1):
    assert "WorkersDisagreeError: The preflight failed on worker 1 of 2 workers" in e
    assert "worker 1 (" in e and "FAIL [checkpoint_not_found]" in e
    assert "worker 0 (" in e and ": PASS; read " in e
    assert "shared file system" in e
  # The same message on both workers.
  assert e0[e0.index("WorkersDisagreeError") :] == e1[e1.index("WorkersDisagreeError") :]
  for r in (w0, w1):
    assert r.seconds < WAIT
  # Only the chief wrote a report, with the disagreement in it.
  report = json.loads((runs["root"] / "missing" / "train" / "od_guard" / "report.json").read_text())
  assert report["verdict"]["decision"] == "fail"
  assert report["findings"][0]["code"] == "workers_disagree"


def test_different_checkpoints_stop_both(runs):
  w0, w1 = runs["differ"]
  e0, e1 = _stopped(w0), _stopped(w1)
  for e in (e0, e1):
    assert "The workers read different checkpoints at the same path" in e
    assert "the index files differ" in e
  assert e0[e0.index("WorkersDisagreeError") :] == e1[e1.index("WorkersDisagreeError") :]


def test_a_worker_that_never_starts_stops_the_other_at_the_timeout(runs):
  (w0,) = runs["absent"]
  # Joining the cluster blocks in TF's C++ (GIL held, SIGTERM ignored): the
  # watchdog process ends the worker with SIGKILL after printing why.
  e0 = _stopped(w0, codes=(1, -9))
  assert w0.seconds < TIMEOUT + 60
  assert "ConsensusTimeoutError: worker 1 did not join the cluster" in e0
  assert f"within {TIMEOUT} s" in e0
  assert "nothing listens at 127.0.0.1:" in e0
  assert "--guard_consensus_timeout" in e0
