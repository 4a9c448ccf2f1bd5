"""The two users' index-only checkpoints in shared/realworld, read as they are;
and tests/data's zoo configs, verbatim copies of shared/realworld's."""

from __future__ import annotations

import pytest

from od_guard.checkpoint import components
from od_guard.checkpoint import inventory

from conftest import BITEWING
from conftest import DATA
from conftest import SIGN_LANGUAGE
from conftest import ZOO
from conftest import ZOO_COPIES
from conftest import needs_realworld
from conftest import tf_listing

pytestmark = needs_realworld

REAL = [
  SIGN_LANGUAGE / "checkpoint" / "ckpt-0",
  SIGN_LANGUAGE / "saved_model" / "variables" / "variables",
  BITEWING / "checkpoint" / "ckpt-0",
  BITEWING / "ckpt-0",
  BITEWING / "saved_model" / "variables" / "variables",
]


@pytest.mark.parametrize("prefix", REAL, ids=lambda p: "/".join(p.parts[-3:]))
def test_real_index_matches_tf_list_variables(prefix):
  inv = inventory.read_inventory(str(prefix))
  listed = tf_listing(str(prefix))
  listed.pop(inventory.OBJECT_GRAPH_KEY, None)
  assert {v.key: (v.shape, v.dtype) for v in inv.variables} == listed
  assert inv.data_shards == inventory.SHARDS_MISSING


def test_efficientdet_components_from_the_index_alone():
  inv = inventory.read_inventory(str(BITEWING / "checkpoint"))
  comps = inv.totals_by_component()
  assert list(comps) == [
    components.BACKBONE,
    components.NECK,
    components.BOX_HEAD,
    components.CLASS_HEAD,
  ]
  # The user's checkpoint also holds the ImageNet classifier top of the
  # Keras EfficientNet (classification_backbone/layer_with_weights-128..130).
  assert {v.path.split("/")[2] for v in inv.variables if v.component == components.BACKBONE} == {
    "_efficientnet",
    "classification_backbone",
  }
  assert all("_bifpn_stage" in v.path for v in inv.variables if v.component == components.NECK)
  # 5 classes, 9 anchors per location: the class head predicts 9 * 5 = 45 logits
  # (EfficientDet's sigmoid head has no background class).
  head = inv.by_key()[
    "model/_box_predictor/_prediction_heads/class_predictions_with_background/"
    "_class_predictor_layers/0/pointwise_kernel/.ATTRIBUTES/VARIABLE_VALUE"
  ]
  assert (head.component, head.shape) == (components.CLASS_HEAD, (1, 1, 64, 45))


def test_test_data_zoo_configs_are_verbatim_copies_of_the_shared_ones():
  import runpy

  listed = runpy.run_path(str(DATA / "make_test_data.py"), run_name="make_test_data")
  assert sorted(p.name for p in ZOO_COPIES.iterdir()) == sorted(listed["ZOO_CONFIGS"])
  for name in listed["ZOO_CONFIGS"]:
    assert (ZOO_COPIES / name).read_bytes() == (ZOO / name).read_bytes(), name


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
