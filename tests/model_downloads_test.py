"""Model builds that reach the network (issue 24, item 6).

Building a CenterNet MobileNetV2 (FPN) model calls
`tf.keras.applications.MobileNetV2(weights="imagenet")`, which downloads
mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 into
~/.keras/models unless it is there, although the fine-tune checkpoint then
overwrites those weights. This machine has no network: stock model_main_tf2
and the model tier both die with "Exception: URL fetch failure on
https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/..."
(measured 2026-12-07, /work/shared/ODAPI-FACTS.md). Each test runs with its own
empty HOME, so nothing cached elsewhere counts; the fix (the file placed at
the cache path) is a weight file of the same layout written by Keras itself.
"""

from __future__ import annotations

import os

import pytest

from od_guard.odapi import model as odapi_model
from od_guard.odapi import preflight
from od_guard.restore import findings

pytestmark = pytest.mark.odapi
CENTER_NET = "center_net_resnet101_v1_fpn_512x512_coco17_tpu-8.config"


def _seed(home) -> str:
  """The cache file Keras looks for, written by Keras (weights=None, same layout)."""
  import tensorflow as tf

  path = os.path.join(str(home), ".keras", "models", odapi_model._MOBILENET_V2_FILE)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.keras.applications.MobileNetV2(include_top=False, weights=None).save_weights(path)
  return path


def _config(odapi_world, name: str, checkpoint: str = ""):
  from od_guard.testing import tiny_odapi

  config = odapi_world.config(checkpoint=checkpoint, zoo=CENTER_NET, image_size=128)
  config.model.center_net.feature_extractor.type = "mobilenet_v2_fpn"
  return tiny_odapi.write_pipeline_config(config, str(odapi_world.root / f"{name}.config"))


@pytest.fixture(scope="module")
def center_net_checkpoint(odapi_world, tmp_path_factory):
  """A CenterNet MobileNetV2 FPN detection checkpoint, built with a seeded cache."""
  from od_guard.testing import tiny_odapi

  home = tmp_path_factory.mktemp("seeded_home")
  saved = os.environ.get("HOME")
  os.environ["HOME"] = str(home)
  try:
    _seed(home)
    config = tiny_odapi.load_pipeline_config(_config(odapi_world, "cn_build"))
    model = tiny_odapi.build_model(config)
    return tiny_odapi.save_detection_checkpoint(model, str(home / "ckpt_center_net"))
  finally:
    os.environ["HOME"] = saved or ""


def test_downloads_are_named_for_the_extractors_that_make_them(odapi_world):
  from od_guard.testing import tiny_odapi

  config = tiny_odapi.load_pipeline_config(_config(odapi_world, "cn_table"))
  (d,) = odapi_model.downloads(config.model)
  assert d.url.endswith("mobilenet_v2/" + odapi_model._MOBILENET_V2_FILE)
  assert odapi_model.downloads(odapi_world.config().model) == []  # SSD MobileNet V2: none
  config.model.center_net.feature_extractor.depth_multiplier = 0.5
  assert odapi_model.downloads(config.model) == []  # weights=None below 1.0


def test_offline_build_names_the_file_and_the_cache_then_passes_once_seeded(
  odapi_world, center_net_checkpoint, tmp_path, monkeypatch
):
  monkeypatch.setenv("HOME", str(tmp_path))
  config = _config(odapi_world, "cn_offline", center_net_checkpoint)
  report = preflight.check(config)
  f = report.finding("model_build_failed")
  assert report.verdict.failed and f.severity == findings.ERROR
  cache = os.path.join(str(tmp_path), ".keras", "models", odapi_model._MOBILENET_V2_FILE)
  assert "could not download" in f.title and cache in f.fix
  assert "URL fetch failure" in f.detail
  assert report.finding("model_build_downloads").severity == findings.INFO
  _seed(tmp_path)  # the fix
  report = preflight.check(config)
  assert not report.verdict.failed, report.verdict.reasons
  assert not report.finding("model_build_downloads")
