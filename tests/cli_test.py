"""`od-guard inspect` / `diff`: output, JSON schema, exit codes, no TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from od_guard import cli

from conftest import REPO
from conftest import SIGN_LANGUAGE
from conftest import cli_in_process
from conftest import needs_realworld
from conftest import run_cli


@needs_realworld
def test_inspect_real_user_checkpoint_reports_prefix_missing_shard_and_components():
  r = cli_in_process("inspect", str(SIGN_LANGUAGE / "checkpoint"))
  assert r.returncode == 0, r.stderr
  assert f"resolved:   {SIGN_LANGUAGE / 'checkpoint' / 'ckpt-0'}" in r.stdout
  assert "data shard missing (ckpt-0.data-00000-of-00001)" in r.stdout
  for line in (
    "backbone      260 tensors      2,257,984 params",
    "neck           30 tensors        252,800 params",
    "box_head       91 tensors         84,632 params",
    "class_head      3 tensors          9,666 params",
  ):
    assert line in r.stdout


@needs_realworld
def test_inspect_json_of_real_user_checkpoint():
  r = cli_in_process("inspect", str(SIGN_LANGUAGE / "checkpoint"), "--json", "--variables")
  assert r.returncode == 0, r.stderr
  d = json.loads(r.stdout)
  assert (d["format"], d["data_shards"]) == ("tf2_object_based", "missing")
  assert d["components"]["backbone"] == {"tensors": 260, "params": 2257984, "bytes": 9031936}
  assert d["totals"]["tensors"] == len(d["variables"]) == 385


def test_inspect_json_follows_the_documented_schema(tmp_path, keras_tf_checkpoint):
  # Index only, as users' checkpoints often come: the schema is the same.
  shutil.copy(keras_tf_checkpoint + ".index", tmp_path / "ckpt-1.index")
  r = cli_in_process("inspect", str(tmp_path / "ckpt-1"), "--json", "--variables")
  assert r.returncode == 0, r.stderr
  d = json.loads(r.stdout)
  assert set(d) == {
    "schema",
    "given",
    "resolved",
    "saved_model",
    "format",
    "data_shards",
    "missing_shards",
    "num_shards",
    "object_graph",
    "notes",
    "totals",
    "totals_by_kind",
    "components",
    "groups",
    "variables",
  }
  assert (d["schema"], d["format"], d["data_shards"]) == (
    "od_guard.inventory/1",
    "tf2_object_based",
    "missing",
  )
  assert d["totals"]["tensors"] == len(d["variables"]) > 0
  v = d["variables"][0]
  assert set(v) == {
    "key",
    "path",
    "attribute",
    "kind",
    "component",
    "shape",
    "dtype",
    "nbytes",
    "slot_of",
    "num_params",
  }


@needs_realworld
def test_inspect_depth_controls_the_tree():
  shallow = cli_in_process("inspect", str(SIGN_LANGUAGE / "checkpoint"), "--depth", "1").stdout
  deep = cli_in_process("inspect", str(SIGN_LANGUAGE / "checkpoint"), "--depth", "4").stdout
  assert "_feature_extractor" not in shallow.split("tree (depth 1)")[1]
  # 104 numbered backbone layers fold into one line.
  assert "layer_with_weights-{0..103} (104)" in deep


def test_inspect_does_not_import_tensorflow(keras_tf_checkpoint):
  for args in (
    ("inspect", keras_tf_checkpoint),
    ("inspect", keras_tf_checkpoint, "--json"),
    ("diff", keras_tf_checkpoint, keras_tf_checkpoint),
  ):
    r = run_cli(*args, check_tf=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "TF_IMPORTED=False"


def test_inspect_index_file_resolves_and_exits_zero(keras_tf_checkpoint):
  r = cli_in_process("inspect", keras_tf_checkpoint + ".index")
  assert r.returncode == 0
  assert "is an index file: used the checkpoint prefix" in r.stdout


def test_inspect_missing_shard_exits_zero(tmp_path, keras_tf_checkpoint):
  shutil.copy(keras_tf_checkpoint + ".index", tmp_path / "ckpt-1.index")
  r = cli_in_process("inspect", str(tmp_path / "ckpt-1"))
  assert r.returncode == 0
  assert "data shard missing" in r.stdout


def test_diff_identical_exits_zero(keras_tf_checkpoint):
  r = cli_in_process("diff", keras_tf_checkpoint, keras_tf_checkpoint)
  assert r.returncode == cli.EXIT_OK
  assert "identical: " in r.stdout


def test_diff_reports_added_removed_and_shape_changes(tf, tmp_path):
  a = tf.train.Checkpoint(
    backbone=tf.Variable(tf.zeros([3, 3])), head=tf.Variable(tf.zeros([4])), old=tf.Variable(1.0)
  ).write(str(tmp_path / "a"))
  b = tf.train.Checkpoint(
    backbone=tf.Variable(tf.zeros([3, 3])),
    head=tf.Variable(tf.zeros([5])),
    new=tf.Variable(tf.zeros([2], tf.int32)),
  ).write(str(tmp_path / "b"))
  r = cli_in_process("diff", a, b, "--json")
  assert r.returncode == cli.EXIT_FINDINGS
  d = json.loads(r.stdout)
  assert d["added"] == ["new/.ATTRIBUTES/VARIABLE_VALUE"]
  assert d["removed"] == ["old/.ATTRIBUTES/VARIABLE_VALUE"]
  assert d["shape_changed"] == [
    {"key": "head/.ATTRIBUTES/VARIABLE_VALUE", "before": "(4,)", "after": "(5,)"}
  ]
  text = cli_in_process("diff", a, b).stdout
  assert "head/.ATTRIBUTES/VARIABLE_VALUE: (4,) -> (5,)" in text


def _console_script() -> str:
  bindir = os.path.dirname(sys.executable)
  script = shutil.which("od-guard", path=bindir) or shutil.which(
    "od-guard", path=os.path.dirname(os.path.realpath(sys.executable))
  )
  if script is None:
    pytest.fail("od-guard console script missing: run `pip install -e .` (make does)")
  return script


def test_console_script_runs_od_guard_cli():
  from importlib import metadata

  import od_guard

  (entry,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "od-guard"]
  assert entry.value == "od_guard.cli:run" and entry.load() is cli.run
  r = subprocess.run(
    [_console_script(), "--version"],
    capture_output=True,
    text=True,
    env=dict(os.environ, PYTHONPATH=str(REPO)),
  )
  # The first line names od_guard; the others the packages around it (install_test).
  assert (r.returncode, r.stdout.splitlines()[0]) == (0, f"od_guard {od_guard.__version__}")


def test_console_script_and_python_m_give_od_guards_exit_codes(tf, tmp_path, keras_tf_checkpoint):
  other = tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(tmp_path / "other"))
  env = dict(os.environ, PYTHONPATH=str(REPO))
  for argv, code, error in (
    (("diff", keras_tf_checkpoint, keras_tf_checkpoint), cli.EXIT_OK, ""),
    (("diff", keras_tf_checkpoint, other), cli.EXIT_FINDINGS, ""),
    (("inspect", str(tmp_path / "nothing-here")), cli.EXIT_BAD_INPUT, "CheckpointNotFoundError"),
    (("inspect",), cli.EXIT_BAD_INPUT, "UsageError: od-guard inspect: "),
  ):
    runs = [
      subprocess.run([*launcher, *argv], capture_output=True, text=True, env=env, timeout=120)
      for launcher in ([_console_script()], [sys.executable, "-m", "od_guard"])
    ]
    assert [r.returncode for r in runs] == [code, code], (argv, runs[0].stderr)
    assert runs[0].stdout == runs[1].stdout
    if error:
      assert [r.stderr.startswith(f"od-guard: error: {error}") for r in runs] == [True, True]


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
