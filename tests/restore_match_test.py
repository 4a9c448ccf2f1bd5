"""The matcher predicts what TensorFlow's restore really does.

Each scenario saves a real checkpoint, predicts the restore with od_guard, then
runs the real `tf.train.Checkpoint(...).restore()` on variables filled with a
sentinel, and compares the predicted "restored" set with the variables whose
values changed.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from od_guard.checkpoint import components
from od_guard.checkpoint import inventory
from od_guard.restore import live_graph
from od_guard.restore import matching as restore_match

SENTINEL = -7.25
FULL = inventory.OBJECT_GRAPH_FULL


def actually_restored(tf, roots, graph: restore_match.LiveGraph, prefix: str) -> set[str]:
  """Paths of the variables a real restore changes."""
  variables = {}
  for name, root in roots.items():
    for v in _all_variables(root):
      variables[id(v)] = v
  for v in variables.values():
    v.assign(tf.fill(v.shape, tf.constant(SENTINEL, v.dtype)))
  tf.train.Checkpoint(**roots).restore(prefix).expect_partial()
  return {
    graph.variables[uid].path for uid, v in variables.items() if not np.all(v.numpy() == SENTINEL)
  }


def _all_variables(root):
  if hasattr(root, "variables") and not callable(root.variables):
    return list(root.variables)
  return list(root.variables()) if callable(getattr(root, "variables", None)) else []


def predicted(report: restore_match.RestorePrediction) -> set[str]:
  return {b.path for b in report.restored}


class Block:
  pass


@pytest.fixture()
def make_net(tf):
  def make(**shapes):
    class Net(tf.Module):
      def __init__(self):
        super().__init__()
        for name, shape in shapes.items():
          setattr(self, name, tf.Variable(tf.random.uniform(shape), name=name))

    return Net()

  return make


def _save(tf, tmp_path, name="src", **roots):
  return tf.train.Checkpoint(**roots).save(str(tmp_path / name / "ckpt"))


def test_identical_structure_restores_everything(tf, tmp_path, make_net):
  prefix = _save(tf, tmp_path, model=make_net(backbone=[3, 3], head=[4]))
  target = make_net(backbone=[3, 3], head=[4])
  graph = live_graph.capture({"model": target})
  report = restore_match.match(graph, inventory.read_inventory(prefix, object_graph=FULL))
  assert report.mode == "object_graph"
  assert predicted(report) == {"model/backbone", "model/head"}
  assert predicted(report) == actually_restored(tf, {"model": target}, graph, prefix)
  assert not report.missing and not report.unused


def test_renamed_child_is_missing_and_unused(tf, tmp_path, make_net):
  prefix = _save(tf, tmp_path, model=make_net(backbone=[3, 3], old_head=[4]))
  target = make_net(backbone=[3, 3], new_head=[4])
  graph = live_graph.capture({"model": target})
  report = restore_match.match(graph, inventory.read_inventory(prefix, object_graph=FULL))
  assert (
    predicted(report)
    == actually_restored(tf, {"model": target}, graph, prefix)
    == {"model/backbone"}
  )
  assert [m.path for m in report.missing] == ["model/new_head"]
  assert report.unused == ("model/old_head/.ATTRIBUTES/VARIABLE_VALUE",)
  assert report.unmatched_objects == 1


def test_shape_mismatch_is_predicted_and_tf_refuses_it(tf, tmp_path, make_net):
  prefix = _save(tf, tmp_path, model=make_net(backbone=[3, 3], head=[4]))
  target = make_net(backbone=[3, 3], head=[5])
  graph = live_graph.capture({"model": target})
  report = restore_match.match(graph, inventory.read_inventory(prefix, object_graph=FULL))
  (mm,) = report.shape_mismatches
  assert (mm.path, mm.checkpoint, mm.model) == ("model/head", (4,), (5,))
  assert predicted(report) == {"model/backbone"}
  with pytest.raises(ValueError, match="Shape mismatch|incompatible"):
    tf.train.Checkpoint(model=target).restore(prefix)


def test_restore_roots_narrower_than_the_model(tf, tmp_path, make_net):
  """Like the OD API's 'detection' type: only the feature extractor is asked for."""
  src = make_net(feature_extractor=[3, 3], box_predictor=[4])
  prefix = _save(tf, tmp_path, model=src)
  target = make_net(feature_extractor=[3, 3], box_predictor=[4])
  fake = tf.train.Checkpoint(feature_extractor=target.feature_extractor)
  roots = {"model": fake}
  graph = live_graph.capture(roots, model={"model": target})
  report = restore_match.match(graph, inventory.read_inventory(prefix, object_graph=FULL))
  assert predicted(report) == {"model/feature_extractor"}
  assert [u.path for u in report.not_requested] == ["model/box_predictor"]
  assert report.unused == ("model/box_predictor/.ATTRIBUTES/VARIABLE_VALUE",)
  target.box_predictor.assign(tf.fill([4], SENTINEL))
  tf.train.Checkpoint(**roots).restore(prefix).expect_partial()
  assert np.all(target.box_predictor.numpy() == SENTINEL)


def test_index_only_checkpoint_predicts_the_same_from_keys(tf, tmp_path, make_net):
  prefix = _save(tf, tmp_path, model=make_net(backbone=[3, 3], old_head=[4]))
  index_only = tmp_path / "index_only"
  index_only.mkdir()
  shutil.copy(prefix + ".index", index_only / "ckpt-1.index")
  target = make_net(backbone=[3, 3], new_head=[4])
  graph = live_graph.capture({"model": target})
  full = restore_match.match(graph, inventory.read_inventory(prefix, object_graph=FULL))
  keys = restore_match.match(graph, inventory.read_inventory(str(index_only / "ckpt-1")))
  assert keys.mode == "keys"
  assert (predicted(keys), keys.missing, keys.unused) == (
    predicted(full),
    full.missing,
    full.unused,
  )


def test_keras_model_into_rebuilt_keras_model(tf, tmp_path):
  import tf_keras as keras

  def build(head_units):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="stem")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(head_units, name="head")(x))

  prefix = _save(tf, tmp_path, model=build(3))
  target = build(5)
  graph = live_graph.capture({"model": target})
  report = restore_match.match(graph, inventory.read_inventory(prefix, object_graph=FULL))
  assert {m.path for m in report.shape_mismatches} == {
    "model/layer_with_weights-1/kernel",
    "model/layer_with_weights-1/bias",
  }
  assert predicted(report) == {
    "model/layer_with_weights-0/kernel",
    "model/layer_with_weights-0/bias",
  }


def test_tf1_name_based_checkpoint_matches_by_variable_name(tf, tmp_path, tf1_checkpoint):
  v1 = tf.compat.v1
  w = tf.Variable(tf.zeros([3, 3, 3, 8]), name="FeatureExtractor/MobilenetV2/Conv/weights")
  other = tf.Variable(tf.zeros([2]), name="unrelated")
  holder = tf.Module()
  holder.w, holder.other = w, other
  graph = live_graph.capture({"model": holder})
  report = restore_match.match(graph, inventory.read_inventory(tf1_checkpoint, object_graph=FULL))
  assert report.mode == "names"
  assert predicted(report) == {"model/w"}
  assert [u.path for u in report.missing] == ["model/other"]
  assert predicted(report) == actually_restored(tf, {"model": holder}, graph, tf1_checkpoint)
  del v1


def test_coverage_is_parameter_weighted_per_component(tf, tmp_path, make_net):
  net = tf.Module()
  net._feature_extractor = make_net(kernel=[10, 10])  # 100 params, backbone
  net._box_predictor = make_net(box_encodings=[5])  # 5 params, box head
  prefix = _save(tf, tmp_path, model=net)
  target = tf.Module()
  target._feature_extractor = make_net(kernel=[10, 10])
  target._box_predictor = make_net(box_encodings=[6])
  report = restore_match.match(
    live_graph.capture({"model": target}), inventory.read_inventory(prefix, object_graph=FULL)
  )
  backbone = report.coverage_of(components.BACKBONE)
  box = report.coverage_of(components.BOX_HEAD)
  assert (backbone.restored_params, backbone.total_params, backbone.fraction) == (100, 100, 1.0)
  assert (box.restored_params, box.total_params) == (0, 6)
  assert report.total.fraction == pytest.approx(100 / 106)


def _renames(tf, tmp_path, saved: dict, target: dict):
  from od_guard.restore import renames

  def tree(spec):
    m = tf.Module()
    for name, value in spec.items():
      setattr(m, name, tree(value) if isinstance(value, dict) else tf.Variable(tf.zeros(value)))
    return m

  prefix = _save(tf, tmp_path, model=tree(saved))
  inv = inventory.read_inventory(prefix, object_graph=FULL)
  report = restore_match.match(live_graph.capture({"model": tree(target)}), inv)
  return [(r.old, r.new, r.count) for r in renames.propose_renames(report, inv)]


def test_a_renamed_scope_gets_one_rule(tf, tmp_path):
  layers = {f"conv{i}": {"kernel": [3, 3, 4, 4], "bias": [4]} for i in range(3)}
  assert _renames(
    tf,
    tmp_path,
    {"CustomExtractor": layers, "head": [2]},
    {"feature_extractor": layers, "head": [2]},
  ) == [("model/CustomExtractor/", "model/feature_extractor/", 6)]


def test_same_shaped_layers_of_different_networks_are_no_rename(tf, tmp_path):
  saved = {"a": {"bn": {"gamma": [8], "beta": [8]}}, "b": {"bn": {"gamma": [8], "beta": [8]}}}
  target = {
    "x": {"bn": {"gamma": [8], "beta": [8]}},
    "y": {"bn": {"gamma": [8], "beta": [8]}},
    "z": {"kernel": [3, 3, 8, 8]},
  }
  assert _renames(tf, tmp_path, saved, target) == []


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
