"""Inventories: formats, kinds, components, object graph, missing shards."""

from __future__ import annotations

import shutil

import pytest

from od_guard.checkpoint import components
from od_guard.checkpoint import inventory

from conftest import needs_realworld
from conftest import tf_listing


def test_tf2_checkpoint_format_and_object_graph(keras_tf_checkpoint):
  inv = inventory.read_inventory(keras_tf_checkpoint, object_graph=inventory.OBJECT_GRAPH_FULL)
  assert inv.format == inventory.TF2_OBJECT_BASED
  assert inv.data_shards == inventory.SHARDS_PRESENT
  assert set(inv.object_graph.root_children) == {"model", "optimizer", "save_counter"}
  assert inv.object_graph.num_nodes == len(inv.object_graph_proto.nodes) > 10


def test_every_key_tf_lists_is_in_the_inventory(keras_tf_checkpoint):
  inv = inventory.read_inventory(keras_tf_checkpoint)
  listed = tf_listing(keras_tf_checkpoint)
  listed.pop(inventory.OBJECT_GRAPH_KEY)
  assert {v.key: (v.shape, v.dtype) for v in inv.variables} == listed


def test_object_graph_attributes_name_existing_keys(keras_tf_checkpoint):
  inv = inventory.read_inventory(keras_tf_checkpoint, object_graph=inventory.OBJECT_GRAPH_FULL)
  keys = set(inv.by_key())
  graph_keys = {a.checkpoint_key for n in inv.object_graph_proto.nodes for a in n.attributes}
  assert graph_keys == keys


def test_keras_checkpoint_kinds(keras_tf_checkpoint):
  inv = inventory.read_inventory(keras_tf_checkpoint)
  by_kind = {k: len(inv.of_kind(k)) for k in inventory.KINDS}
  # conv kernel+bias, bn gamma/beta/mean/var, dense kernel+bias.
  assert by_kind[inventory.MODEL] == 8
  # Adam keeps m and v for each of the 6 trainable variables.
  assert by_kind[inventory.OPTIMIZER_SLOT] == 12
  assert by_kind[inventory.BOOKKEEPING] == 2  # save_counter, iterations
  assert by_kind[inventory.OPTIMIZER_STATE] == 1  # learning rate


def test_legacy_slots_name_the_variable_they_belong_to(tf, tmp_path):
  v = tf.Variable(tf.ones([3]))
  opt = tf.compat.v1.train.MomentumOptimizer(0.1, 0.9)
  opt.minimize(lambda: tf.reduce_sum(v * v), var_list=[v])
  prefix = tf.train.Checkpoint(net=v, optimizer=opt).write(str(tmp_path / "ckpt"))
  inv = inventory.read_inventory(prefix)
  (slot,) = inv.of_kind(inventory.OPTIMIZER_SLOT)
  assert (slot.slot_of, slot.shape) == ("net", (3,))


def test_escaped_names_are_decoded(keras_tf_checkpoint):
  inv = inventory.read_inventory(keras_tf_checkpoint)
  kernel = next(
    v for v in inv.of_kind(inventory.MODEL) if v.shape == (4, 3)
  )  # the Dense named 'class.head/logits'
  assert ".." in kernel.key or ".S" in kernel.key or "layer_with_weights" in kernel.key


def test_tf1_checkpoint_format_kinds_and_components(tf1_checkpoint):
  inv = inventory.read_inventory(tf1_checkpoint)
  assert inv.format == inventory.TF1_NAME_BASED
  assert inv.object_graph is None
  by_key = inv.by_key()
  assert by_key["FeatureExtractor/MobilenetV2/Conv/weights"].component == components.BACKBONE
  assert by_key["BoxPredictor_0/ClassPredictor/weights"].component == components.CLASS_HEAD
  momentum = by_key["FeatureExtractor/MobilenetV2/Conv/weights/Momentum"]
  assert (momentum.kind, momentum.slot_of) == (
    inventory.OPTIMIZER_SLOT,
    "FeatureExtractor/MobilenetV2/Conv/weights",
  )
  assert by_key["global_step"].kind == inventory.BOOKKEEPING
  assert any("TF1 name-based" in n for n in inv.notes)


def test_saved_model_format(saved_model_dir):
  inv = inventory.read_inventory(saved_model_dir)
  assert inv.format == inventory.SAVED_MODEL
  assert sorted(v.shape for v in inv.of_kind(inventory.MODEL)) == [(2,), (4, 2)]


def test_missing_data_shard_keeps_names_and_says_what_is_unchecked(tmp_path, keras_tf_checkpoint):
  shutil.copy(keras_tf_checkpoint + ".index", tmp_path / "ckpt-1.index")
  inv = inventory.read_inventory(str(tmp_path / "ckpt-1"))
  full = inventory.read_inventory(keras_tf_checkpoint)
  assert inv.data_shards == inventory.SHARDS_MISSING
  assert inv.missing_shards == (str(tmp_path / "ckpt-1.data-00000-of-00001"),)
  assert inv.object_graph is None
  assert [(v.key, v.shape) for v in inv.variables] == [(v.key, v.shape) for v in full.variables]
  assert any("tensor values and the object graph cannot be checked" in n for n in inv.notes)


@needs_realworld
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_groups_are_the_path_prefixes_of_depth_components(depth):
  from conftest import SIGN_LANGUAGE

  inv = inventory.read_inventory(str(SIGN_LANGUAGE / "checkpoint"))
  expected: dict[str, int] = {}
  for v in inv.variables:
    prefix = "/".join(v.path.split("/")[:depth])
    expected[prefix] = expected.get(prefix, 0) + 1
  assert {p: t.tensors for p, t in inv.groups(depth)} == expected


def test_keras2_h5(keras2_h5):
  inv = inventory.read_inventory(keras2_h5)
  assert inv.format == inventory.KERAS2_HDF5
  assert sorted(v.shape for v in inv.variables) == [(2,), (3,), (3, 2), (4, 3)]
  assert all(v.kind == inventory.MODEL for v in inv.variables)


def test_default_read_summarizes_the_object_graph_without_parsing_it(keras_tf_checkpoint):
  inv = inventory.read_inventory(keras_tf_checkpoint)
  full = inventory.read_inventory(keras_tf_checkpoint, object_graph=inventory.OBJECT_GRAPH_FULL)
  assert inv.object_graph_proto is None
  assert inv.object_graph == full.object_graph
  assert (
    inventory.read_inventory(
      keras_tf_checkpoint, object_graph=inventory.OBJECT_GRAPH_NONE
    ).object_graph
    is None
  )


def test_keras3_weights_and_archive_agree(keras3_files):
  weights, archive = keras3_files
  a = inventory.read_inventory(weights)
  b = inventory.read_inventory(archive)
  assert a.format == b.format == inventory.KERAS3_WEIGHTS
  assert [(v.key, v.shape) for v in a.variables] == [(v.key, v.shape) for v in b.variables]
  model = {v.key: v.shape for v in a.of_kind(inventory.MODEL)}
  # Keras 3 names groups by layer path (class-derived), not by the layer's name.
  assert model["layers/dense/vars/0"] == (4, 3)
  assert [v.key for v in a.of_kind(inventory.BOOKKEEPING)] == ["optimizer/vars/0"]
  assert a.of_kind(inventory.OPTIMIZER_SLOT)  # Adam's m and v


@pytest.mark.odapi
def test_odapi_checkpoint_components(odapi_checkpoint):
  inv = inventory.read_inventory(odapi_checkpoint)
  comps = inv.totals_by_component()
  assert set(comps) == {
    components.BACKBONE,
    components.NECK,
    components.BOX_HEAD,
    components.CLASS_HEAD,
  }
  assert inv.object_graph.root_children == ("model", "save_counter")
  # 3 classes + background, 6 anchors per location: the class head's 1x1 conv
  # has 24 outputs.
  class_kernels = [
    v
    for v in inv.variables
    if v.component == components.CLASS_HEAD
    and "_prediction_heads/class_predictions_with_background" in v.path
    and v.path.endswith("pointwise_kernel")
  ]
  assert class_kernels and class_kernels[0].shape[-1] == 24


def test_ram_filesystem_uri(tf):
  ckpt = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0]))
  prefix = ckpt.write("ram://od_guard_test/ckpt")
  inv = inventory.read_inventory(prefix)
  assert inv.format == inventory.TF2_OBJECT_BASED
  assert [(v.path, v.shape) for v in inv.of_kind(inventory.MODEL)] == [("v", (2,))]


def test_component_rules():
  cases = {
    "model/_feature_extractor/classification_backbone/layer_with_weights-0/kernel": components.BACKBONE,
    "model/_feature_extractor/_fpn_features_generator/top_layers/0/kernel": components.NECK,
    "model/_feature_extractor/_bifpn_stage/node_input_blocks/0/kernel": components.NECK,
    "model/_box_predictor/_prediction_heads/class_predictions_with_background/0/kernel": components.CLASS_HEAD,
    "model/_box_predictor/_box_prediction_head/_box_encoder_layers/0/kernel": components.BOX_HEAD,
    "model/_box_predictor/_head_scope_conv_layers/ClassPredictionTower/0/kernel": components.CLASS_HEAD,
    "model/_prediction_head_dict/center/0/kernel": components.CLASS_HEAD,
    "model/_prediction_head_dict/box/scale/0/kernel": components.BOX_HEAD,
    "FeatureExtractor/MobilenetV1/fpn/top_down/smoothing_1/weights": components.NECK,
    "dense_3/kernel": components.OTHER,
  }
  assert {p: components.classify(p) for p in cases} == cases


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
