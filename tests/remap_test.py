"""`od-guard remap`: renames that keep every value, and the renamed-scope round trip."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest

from od_guard.checkpoint import bundle_writer
from od_guard.checkpoint import inventory
from od_guard.checkpoint import tensor_bundle
from od_guard.naming import object_graph_rewrite
from od_guard.naming import remap
from od_guard.naming import rename_rules
from od_guard.naming import tf1_conversion

from conftest import run_cli


def _values(tf, prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {
    k: reader.get_tensor(k)
    for k in reader.get_variable_to_shape_map()
    if k != inventory.OBJECT_GRAPH_KEY
  }


def _tree(tf, **scopes):
  root = tf.Module()
  for name, shapes in scopes.items():
    scope = tf.Module()
    for i, shape in enumerate(shapes):
      setattr(scope, f"w{i}", tf.Variable(tf.random.normal(shape)))
    setattr(root, name, scope)
  return root


def test_regex_rule_with_groups_renames_keys_and_graph(tf, tmp_path):
  src = tf.train.Checkpoint(model=_tree(tf, block_1=[[2, 2]], block_2=[[3]])).save(
    str(tmp_path / "src" / "ckpt")
  )
  r = run_cli(
    "remap",
    src,
    str(tmp_path / "dst" / "ckpt-1"),
    "--rule",
    r"model/block_(\d)/->model/stage\1/",
    "--json",
  )
  assert r.returncode == 0, r.stderr
  d = json.loads(r.stdout)
  assert (d["renamed"], d["object_graph_rewritten"], d["verified"]) == (2, True, True)
  target = _tree(tf, stage1=[[2, 2]], stage2=[[3]])
  tf.train.Checkpoint(model=target).restore(str(tmp_path / "dst" / "ckpt-1")).assert_consumed()
  before = _values(tf, src)
  np.testing.assert_array_equal(
    target.stage1.w0.numpy(), before["model/block_1/w0/.ATTRIBUTES/VARIABLE_VALUE"]
  )


def test_tf1_name_based_remap(tf, tmp_path, tf1_checkpoint):
  dst = str(tmp_path / "renamed" / "model.ckpt")
  r = run_cli("remap", tf1_checkpoint, dst, "--rule", "FeatureExtractor/MobilenetV2/->FE/")
  assert r.returncode == 0, r.stderr
  after = _values(tf, dst)
  before = _values(tf, tf1_checkpoint)
  assert "FE/Conv/weights" in after and "FeatureExtractor/MobilenetV2/Conv/weights" not in after
  np.testing.assert_array_equal(
    after["FE/Conv/weights"], before["FeatureExtractor/MobilenetV2/Conv/weights"]
  )
  assert len(after) == len(before)


def test_source_untouched_destination_not_overwritten(tf, tmp_path):
  src = tf.train.Checkpoint(model=_tree(tf, a=[[2]])).save(str(tmp_path / "src" / "ckpt"))
  stamps = {n: os.stat(tmp_path / "src" / n).st_mtime_ns for n in os.listdir(tmp_path / "src")}
  dst = str(tmp_path / "dst" / "ckpt-1")
  assert run_cli("remap", src, dst, "--rule", "model/a/->model/b/").returncode == 0
  again = run_cli("remap", src, dst, "--rule", "model/a/->model/b/")
  assert again.returncode == 2 and "The destination checkpoint exists." in again.stderr
  assert run_cli("remap", src, dst, "--rule", "model/a/->model/c/", "--overwrite").returncode == 0
  assert "model/c/w0/.ATTRIBUTES/VARIABLE_VALUE" in _values(tf, dst)
  assert stamps == {
    n: os.stat(tmp_path / "src" / n).st_mtime_ns for n in os.listdir(tmp_path / "src")
  }
  assert not [n for n in os.listdir(tmp_path / "dst") if n.startswith(".od_guard-remap-")]


def test_rules_that_move_values_to_another_depth_are_refused(tf, tmp_path):
  src = tf.train.Checkpoint(model=_tree(tf, a=[[2]])).save(str(tmp_path / "src" / "ckpt"))
  r = run_cli("remap", src, str(tmp_path / "dst" / "ckpt"), "--rule", "model/a/->model/x/y/")
  assert r.returncode == 2
  assert "only renames of scopes can be applied to an object-based checkpoint" in r.stderr


def test_progress_is_shown_on_large_checkpoints(tf, tmp_path):
  src = tf.train.Checkpoint(model=_tree(tf, a=[[64, 64]] * 6)).save(str(tmp_path / "s" / "ckpt"))
  seen = []
  remap.remap(
    src,
    str(tmp_path / "d" / "ckpt"),
    [remap.Rule.parse("model/a/->model/b/")],
    progress=lambda done, total: seen.append((done, total)),
    progress_every=20_000,
  )
  assert seen[-1] == (8, 8) and len(seen) >= 3  # 6 tensors, save_counter, object graph


@pytest.mark.parametrize(
  "args,phrase",
  [
    (["--rule", "no-arrow"], "A rename rule needs the form OLD->NEW."),
    (["--rule", "(unclosed->x"], "is not a valid regular expression"),
    ([], "remap needs --rule or --from-report."),
  ],
)
def test_bad_rules(tf, tmp_path, args, phrase):
  src = tf.train.Checkpoint(model=_tree(tf, a=[[2]])).save(str(tmp_path / "src" / "ckpt"))
  r = run_cli("remap", src, str(tmp_path / "dst"), *args)
  assert r.returncode == 2 and phrase in r.stderr and "Traceback" not in r.stderr


def test_missing_data_shard_is_refused(tf, tmp_path):
  src = tf.train.Checkpoint(model=_tree(tf, a=[[2]])).save(str(tmp_path / "src" / "ckpt"))
  (tmp_path / "only").mkdir()
  shutil.copy(src + ".index", tmp_path / "only" / "ckpt-1.index")
  r = run_cli("remap", str(tmp_path / "only" / "ckpt-1"), str(tmp_path / "dst"), "--rule", "a->b")
  assert r.returncode == 2 and "the source's data shard is missing" in r.stderr


@pytest.mark.odapi
def test_renamed_scope_round_trip(odapi_world, tf, tmp_path):
  """check proposes the map; remap applies it; the OD API model restores with
  assert_consumed(), and every value equals the original."""
  from od_guard.odapi import model as odapi_model
  from od_guard.restore import live_graph

  config = odapi_world.write_config("roundtrip", checkpoint=odapi_world.checkpoints["renamed"])
  r = run_cli("check", "--json", "--pipeline_config_path", config)
  assert r.returncode == 1
  (tmp_path / "report.json").write_text(r.stdout)
  fixed = str(tmp_path / "fixed" / "ckpt-1")
  r = run_cli(
    "remap",
    odapi_world.checkpoints["renamed"],
    fixed,
    "--from-report",
    str(tmp_path / "report.json"),
  )
  assert r.returncode == 0, r.stderr
  assert (
    run_cli("check", "--json", "--pipeline_config_path", config, "--checkpoint", fixed).returncode
    == 0
  )
  model = odapi_model.build(odapi_world.config())
  tf.train.Checkpoint(model=model).restore(fixed).assert_consumed()
  original = _values(tf, odapi_world.checkpoints["renamed"])
  graph = live_graph.capture({"model": model})
  by_id = {id(v): v for v in model.variables}
  for uid, v in graph.variables.items():
    old_key = v.path.replace("model/_feature_extractor/", "model/CustomExtractor/", 1)
    np.testing.assert_array_equal(
      by_id[uid].numpy(), original[old_key + "/.ATTRIBUTES/VARIABLE_VALUE"]
    )


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))


def test_tf1_checkpoint_converts_to_object_based_for_a_target(tf, tmp_path, tf1_checkpoint):
  class Target(tf.Module):
    def __init__(self):
      super().__init__()
      self.backbone = tf.Module()
      self.backbone.conv = tf.Variable(tf.zeros([3, 3, 3, 8]), name="backbone/conv")
      self.classifier = tf.Variable(tf.zeros([1, 1, 8, 12]), name="head/classifier")

  target = Target()
  result = tf1_conversion.tf1_to_object_based(
    tf1_checkpoint,
    str(tmp_path / "tf2" / "ckpt"),
    {"model": target},
    rules=[
      remap.Rule.parse("FeatureExtractor/MobilenetV2/Conv/weights->backbone/conv"),
      remap.Rule.parse("BoxPredictor_0/ClassPredictor/weights->head/classifier"),
    ],
  )
  assert result.converted == 2 and result.unused == ()
  fresh = Target()
  tf.train.Checkpoint(model=fresh).restore(str(tmp_path / "tf2" / "ckpt")).assert_consumed()
  np.testing.assert_array_equal(
    fresh.backbone.conv.numpy(),
    _values(tf, tf1_checkpoint)["FeatureExtractor/MobilenetV2/Conv/weights"],
  )
  assert (
    inventory.read_inventory(str(tmp_path / "tf2" / "ckpt")).format == inventory.TF2_OBJECT_BASED
  )


def test_tf1_conversion_says_what_does_not_fit(tf, tmp_path, tf1_checkpoint):
  target = tf.Module()
  target.conv = tf.Variable(
    tf.zeros([3, 3, 3, 16]), name="FeatureExtractor/MobilenetV2/Conv/weights"
  )
  target.other = tf.Variable(tf.zeros([2]), name="other")
  with pytest.raises(remap.RemapError) as e:
    tf1_conversion.tf1_to_object_based(tf1_checkpoint, str(tmp_path / "x"), {"model": target})
  assert (
    "1 target variables without a value (e.g. model/other (variable name 'other'))"
    in e.value.received
  )
  assert "1 shape mismatches" in e.value.received


def test_copy_without_copy_file_range_gives_the_same_checkpoint(tf, tmp_path, monkeypatch):
  src = tf.train.Checkpoint(model=_tree(tf, a=[[8, 8], [3]])).save(str(tmp_path / "s" / "ckpt"))

  def unsupported(*args, **kwargs):
    raise OSError(18, "Invalid cross-device link")

  monkeypatch.setattr(os, "copy_file_range", unsupported, raising=False)
  remap.remap(src, str(tmp_path / "d" / "ckpt"), [remap.Rule.parse("model/a/->model/b/")])
  after = _values(tf, str(tmp_path / "d" / "ckpt"))
  for key, value in _values(tf, src).items():
    np.testing.assert_array_equal(after[key.replace("model/a/", "model/b/")], value)


def test_remap_does_not_import_tensorflow(tf, tmp_path):
  src = tf.train.Checkpoint(model=_tree(tf, a=[[2]])).save(str(tmp_path / "s" / "ckpt"))
  r = run_cli(
    "remap", src, str(tmp_path / "d" / "ckpt"), "--rule", "model/a/->model/b/", check_tf=True
  )
  assert r.returncode == 0 and r.stderr.strip().splitlines()[-1] == "TF_IMPORTED=False"


def _source_and_damaged_remap(tf, tmp_path, monkeypatch, damage):
  """Remaps a small checkpoint 'model/a/' -> 'model/b/' with `damage` applied
  to the destination as it is written; returns the verification error."""
  src = tf.train.Checkpoint(model=_tree(tf, a=[[8, 8], [16]])).save(str(tmp_path / "s" / "ckpt"))
  copy = bundle_writer.copy_bundle

  def damaged_copy(prefix, index, destination, renames, replace, **kwargs):
    damage(copy, prefix, index, destination, renames, replace, **kwargs)

  monkeypatch.setattr(bundle_writer, "copy_bundle", damaged_copy)
  with pytest.raises(remap.RemapVerificationError) as e:
    remap.remap(src, str(tmp_path / "d" / "ckpt"), [remap.Rule.parse("model/a/->model/b/")])
  assert "does not hold what the source and the rules promise" in e.value.what
  return e.value


def test_verification_catches_a_truncated_data_shard(tf, tmp_path, monkeypatch):
  def truncate(copy, prefix, index, destination, *args, **kwargs):
    copy(prefix, index, destination, *args, **kwargs)
    data = tensor_bundle.shard_path(destination, 0, 1)
    os.truncate(data, os.path.getsize(data) - 4)

  error = _source_and_damaged_remap(tf, tmp_path, monkeypatch, truncate)
  m = re.search(
    r"the data shard holds (\d+) bytes; the index describes (\d+) bytes", error.received
  )
  assert m and int(m[2]) - int(m[1]) == 4


def test_verification_catches_a_key_written_under_another_name(tf, tmp_path, monkeypatch):
  def misname(copy, prefix, index, destination, renames, *args, **kwargs):
    wrong = dict(renames)
    wrong["model/a/w1/.ATTRIBUTES/VARIABLE_VALUE"] = "model/x/w1/.ATTRIBUTES/VARIABLE_VALUE"
    copy(prefix, index, destination, wrong, *args, **kwargs)

  error = _source_and_damaged_remap(tf, tmp_path, monkeypatch, misname)
  assert error.received.endswith(
    ": 'model/b/w1/.ATTRIBUTES/VARIABLE_VALUE' is missing; "
    "'model/x/w1/.ATTRIBUTES/VARIABLE_VALUE' was not asked for"
  )


def test_verification_catches_other_values_under_the_right_names(tf, tmp_path, monkeypatch):
  """Same keys, dtypes, shapes and sizes, other bytes: the stored CRCs differ."""
  other = tf.train.Checkpoint(model=_tree(tf, a=[[8, 8], [16]])).save(str(tmp_path / "o" / "ckpt"))

  def from_other(copy, prefix, index, *args, **kwargs):
    copy(other, tensor_bundle.read_index(other + ".index"), *args, **kwargs)

  error = _source_and_damaged_remap(tf, tmp_path, monkeypatch, from_other)
  problems = error.received.split(": ", 1)[1].split("; ")
  assert [p.split(" ")[:2] for p in problems] == [
    ["'model/b/w0/.ATTRIBUTES/VARIABLE_VALUE':", "crc32c"],
    ["'model/b/w1/.ATTRIBUTES/VARIABLE_VALUE':", "crc32c"],
  ]


def test_rewriting_the_object_graph_leaves_the_source_graph_unchanged(tf, tmp_path):
  src = tf.train.Checkpoint(model=_tree(tf, a=[[2]])).save(str(tmp_path / "s" / "ckpt"))
  inv = inventory.read_inventory(src, object_graph=inventory.OBJECT_GRAPH_FULL)
  before = inv.object_graph_proto.SerializeToString()
  mapping = rename_rules.rename_keys(
    [v.key for v in inv.variables], [rename_rules.Rule("model/a/", "model/b/")]
  )
  rewritten = object_graph_rewrite.rewrite_object_graph(inv.object_graph_proto, mapping)
  assert inv.object_graph_proto.SerializeToString() == before
  keys = {a.checkpoint_key for node in rewritten.nodes for a in node.attributes}
  assert keys == set(mapping.values())


def test_two_keys_renamed_alike_are_refused():
  with pytest.raises(remap.RemapError) as e:
    remap.rename_keys(["a/x", "b/x"], [remap.Rule.parse("(a|b)/->c/")])
  assert (e.value.what, e.value.received) == (
    "Two keys would get the same new name.",
    "'a/x' and 'b/x' -> 'c/x'",
  )


def test_a_partitioned_variable_is_unsupported_not_corrupt(tf, tmp_path):
  """A TF1 checkpoint with a partitioned variable (written by TF's Saver) is
  sound: remap says it does not rewrite slices, with TF's own way to rename,
  and writes nothing."""
  with tf.Graph().as_default():
    tf.compat.v1.get_variable(
      "model/emb", shape=[10, 4], partitioner=tf.compat.v1.fixed_size_partitioner(2)
    )
    tf.compat.v1.get_variable("model/dense/kernel", shape=[4, 2])
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      src = tf.compat.v1.train.Saver().save(session, str(tmp_path / "src" / "model.ckpt"))
  entries = tensor_bundle.read_index(src + ".index").entries
  assert {e.key: e.sliced for e in entries} == {"model/dense/kernel": False, "model/emb": True}
  dst = tmp_path / "dst" / "ckpt"
  r = run_cli("remap", "--json", src, str(dst), "--rule", "model/->net/")
  assert r.returncode == 2, r.stderr
  error = json.loads(r.stdout)
  assert error["error"] == "UnsupportedCheckpointError"
  assert "'model/emb' is a partitioned (sliced) variable" in error["what"]
  assert "not damaged" in error["what"]
  assert "init_from_checkpoint" in error["fix"]
  assert not (tmp_path / "dst").exists() or not os.listdir(tmp_path / "dst")
