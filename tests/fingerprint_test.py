"""Fingerprints of checkpoints the OD API wrote from zoo configs (tests/data's
copies), and of the real users' index-only checkpoints (shared/realworld)."""

from __future__ import annotations

import pytest

from od_guard.checkpoint import inventory
from od_guard.restore import fingerprint

from conftest import BITEWING
from conftest import SIGN_LANGUAGE
from conftest import ZOO_COPIES
from conftest import needs_realworld

ZOO_MODELS = [
  # (zoo config, image size the backbone accepts, expected description)
  ("ssd_mobilenet_v2_320x320_coco17_tpu-8.config", 64, "SSD MobileNet v2"),
  ("ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config", 64, "SSD MobileNet v2 FPNLite"),
  ("ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8.config", 128, "SSD MobileNet v1 FPN"),
  ("ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config", 256, "SSD ResNet50 FPN"),
  ("ssd_efficientdet_d0_512x512_coco17_tpu-8.config", 256, "SSD EfficientNet-b0 BiFPN"),
  ("faster_rcnn_resnet50_v1_640x640_coco17_tpu-8.config", 64, "FASTER RCNN ResNet50"),
  ("center_net_resnet101_v1_fpn_512x512_coco17_tpu-8.config", 64, "CENTER NET ResNet50"),
]


@pytest.mark.odapi
@pytest.mark.parametrize(
  "config,size,description", ZOO_MODELS, ids=[c.split("_coco")[0] for c, _, _ in ZOO_MODELS]
)
def test_fingerprint_of_a_model_the_od_api_built(tmp_path, config, size, description):
  from od_guard.testing import tiny_odapi

  small = tiny_odapi.shrink_pipeline_config(
    tiny_odapi.load_pipeline_config(str(ZOO_COPIES / config)), image_size=size, num_classes=3
  )
  prefix = tiny_odapi.save_detection_checkpoint(tiny_odapi.build_model(small), str(tmp_path))
  fp = fingerprint.fingerprint(inventory.read_inventory(prefix))
  meta = small.model.WhichOneof("model")
  assert fp.describe() == description
  assert fp.meta_architecture == meta
  assert getattr(small.model, meta).feature_extractor.type in fp.feature_extractor_types
  assert fp.num_classes() == 3
  assert fp.checkpoint_kind == fingerprint.DETECTION


@needs_realworld
def test_real_user_checkpoints():
  sign = fingerprint.fingerprint(inventory.read_inventory(str(SIGN_LANGUAGE / "checkpoint")))
  assert (
    sign.describe(),
    sign.feature_extractor_types,
    sign.num_classes(),
    sign.depth_multiplier,
  ) == ("SSD MobileNet v2 FPNLite", ("ssd_mobilenet_v2_fpn_keras",), 10, 1.0)
  teeth = fingerprint.fingerprint(inventory.read_inventory(str(BITEWING / "checkpoint")))
  assert (teeth.describe(), teeth.feature_extractor_types, teeth.num_classes()) == (
    "SSD EfficientNet-b0 BiFPN",
    ("ssd_efficientnet-b0_bifpn_keras",),
    5,
  )


def test_weightless_and_classification_kinds(tf, tmp_path):
  weightless = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64)).save(
    str(tmp_path / "w" / "ckpt")
  )
  assert (
    fingerprint.fingerprint(inventory.read_inventory(weightless)).checkpoint_kind
    == fingerprint.WEIGHTLESS
  )
  module = tf.Module()
  module.kernel = tf.Variable(tf.zeros([3, 3, 3, 32]))
  cls = tf.train.Checkpoint(feature_extractor=module).save(str(tmp_path / "c" / "ckpt"))
  assert (
    fingerprint.fingerprint(inventory.read_inventory(cls)).checkpoint_kind
    == fingerprint.CLASSIFICATION
  )


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
