"""The stock OD API trains here, in-process aliases applied, no file edited."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
from conftest import ZOO

pytestmark = pytest.mark.odapi


def test_apply_aliases_the_moved_functions():
  from tensorflow.python.ops import control_flow_ops

  from od_guard.odapi import compat as odapi_compat

  odapi_compat.apply()
  from tensorflow.python.ops import cond
  from tensorflow.python.ops import control_flow_case

  assert control_flow_ops.case is control_flow_case.case
  assert control_flow_ops.cond is cond.cond
  assert odapi_compat.apply() == []  # idempotent


def test_installed_tf_slim_is_left_untouched():
  import tf_slim

  path = os.path.join(os.path.dirname(tf_slim.__file__), "data", "tfexample_decoder.py")
  assert "control_flow_ops.case(" in open(path).read()


def test_stock_model_main_tf2_trains_a_tiny_config(tmp_path):
  from od_guard.testing import tiny_odapi

  record = tiny_odapi.write_synthetic_tfrecord(
    str(tmp_path / "train.record"), num_examples=4, image_size=64
  )
  label_map = tiny_odapi.write_label_map(str(tmp_path / "label_map.pbtxt"), 3)
  config = tiny_odapi.shrink_pipeline_config(
    tiny_odapi.load_pipeline_config(str(ZOO / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config")),
    image_size=64,
    num_classes=3,
    batch_size=2,
    num_steps=1,
    train_record=record,
    label_map=label_map,
    fine_tune_checkpoint="",
  )
  pipeline = tiny_odapi.write_pipeline_config(config, str(tmp_path / "pipeline.config"))
  model_dir = tmp_path / "train"
  r = subprocess.run(
    [
      sys.executable,
      "-m",
      "od_guard.odapi_compat",
      "object_detection.model_main_tf2",
      f"--pipeline_config_path={pipeline}",
      f"--model_dir={model_dir}",
      "--checkpoint_every_n=1000",
      "--alsologtostderr",
    ],
    capture_output=True,
    text=True,
    timeout=600,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2"),
  )
  assert r.returncode == 0, r.stderr[-3000:]
  assert "control_flow_ops' has no attribute" not in r.stderr
  assert "Step 100 per-step time" in r.stderr
  assert (model_dir / "checkpoint").exists()


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
