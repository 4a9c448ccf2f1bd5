"""The 8 zoo configs of tests/data/zoo_configs, built by the OD API's model
builder as the preflight builds them (shrunk to 3 classes and a size each
backbone accepts), summarized to compare across environments: the number of
variables, trainable variables and parameters, and a digest of the sorted
(name, shape) list. tests/data/make_odapi_model_sizes.py writes TF 2.15's (the
odapi environment) to tests/data/odapi_model_sizes.json;
tests/modern_odapi_test.py builds them on TF 2.20 through the compat layer.
"""

from __future__ import annotations

import pathlib

DUMP = pathlib.Path(__file__).resolve().parent.parent / "data" / "odapi_model_sizes.json"

# Zoo config -> image size: the smallest each backbone builds at, quickly.
SIZES = {
  "ssd_mobilenet_v2_320x320_coco17_tpu-8.config": 64,
  "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config": 64,
  "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8.config": 128,
  "ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config": 256,
  "ssd_efficientdet_d0_512x512_coco17_tpu-8.config": 256,
  "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8.config": 64,
  "center_net_resnet101_v1_fpn_512x512_coco17_tpu-8.config": 64,
  "center_net_deepmac_1024x1024_coco_tpu-128.config": 128,
}

# Run in a fresh interpreter: argv[1] is tests/data/zoo_configs; prints one JSON line.
BUILD_SCRIPT = """
import hashlib, json, sys
from od_guard.odapi import compat
compat.install()
import numpy as np
import tensorflow as tf
from od_guard.testing import tiny_odapi
out = {"tensorflow": tf.__version__, "models": {}}
for name, size in json.loads(sys.argv[2]).items():
  config = tiny_odapi.shrink_pipeline_config(
    tiny_odapi.load_pipeline_config(sys.argv[1] + "/" + name), image_size=size, num_classes=3)
  model = tiny_odapi.build_model(config)
  listing = sorted((v.name, tuple(v.shape.as_list())) for v in model.variables)
  out["models"][name] = {
    "image_size": size,
    "variables": len(model.variables),
    "trainable": len(model.trainable_variables),
    "parameters": int(sum(int(np.prod(v.shape)) for v in model.variables)),
    "names_sha256": hashlib.sha256(repr(listing).encode()).hexdigest(),
  }
print(json.dumps(out))
"""
