"""`check --static` reads every pipeline.config the same wherever od_guard runs.

The schema comes from where it can (od_guard/odapi/config_schema.py): the OD
API's generated protos (odapi environment; protobuf 3.20 with the OD API
installed without dependencies), the same classes rebuilt from their serialized
descriptors (modern: protobuf 7 refuses the protoc-3 modules), or none at all
(plain: `pip install .` only; od_guard/odapi/config_text.py). The 39 zoo
configs and the users' configs in ../shared/realworld must get the same
verdicts on every route: each environment checks the routes it has against
one table, and a venv with protobuf 3.20 and the OD API (no dependencies) is
built to check that combination too.
"""

from __future__ import annotations

import configparser
import json
import os
import pathlib
import subprocess
import sys

import pytest

from od_guard import errors
from od_guard.odapi import config
from od_guard.odapi import config_schema
from od_guard.odapi import config_text

from conftest import BITEWING
from conftest import REPO
from conftest import SIGN_LANGUAGE
from conftest import ZOO
from conftest import ZOO_COPIES
from conftest import needs_realworld

pytestmark = pytest.mark.plain

# The verdict of `od-guard check --static` for each shared config, as it is and
# with --checkpoint naming the sign-language model's checkpoint (an SSD
# MobileNet v2 FPNLite detection checkpoint, index only), which exercises every
# field the preflight reads. "decision: code:severity ..." or "Error: fix".
EXPECTED = {
  "center_net_deepmac_1024x1024_coco_tpu-128.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e checkpoint_type_unsupported:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "center_net_deepmac_1024x1024_non_voc_only_tpu-128.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "center_net_deepmac_1024x1024_voc_only_tpu-128.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "center_net_resnet101_v1_fpn_512x512_coco17_tpu-8.config": (
    "fail: checkpoint_not_found:e input_path_missing:e input_path_missing:w",
    "fail: input_path_missing:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_missing:w data_shard_missing:w",
  ),
  "centernet_hg104_512x512_coco17_tpu-8.config": (
    "ConfigError: Quote the value",
    "ConfigError: Quote the value",
  ),
  "centernet_hg104_512x512_kpts_coco17_tpu-32.config": (
    "fail: checkpoint_not_found:e input_path_placeholder:e input_path_missing:e relative_checkpoint_path:w input_path_placeholder:w input_path_missing:w",
    "fail: input_path_placeholder:e input_path_missing:e meta_architecture_mismatch:e input_path_placeholder:w input_path_missing:w data_shard_missing:w",
  ),
  "centernet_hg104_512x512_kpts_coco17_tpu-8.config": (
    "ConfigError: Quote the value",
    "ConfigError: Quote the value",
  ),
  "centernet_hourglass104_1024x1024_coco17_tpu-32.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "centernet_hourglass104_1024x1024_kpts_coco17_tpu-32.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "centernet_hourglass104_512x512_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "centernet_hourglass104_512x512_kpts_coco17_tpu-32.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "centernet_resnet50_v1_fpn_512x512_kpts_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "centernet_resnet50_v2_512x512_coco17_tpu-8.config": (
    "ConfigError: Fix the field",
    "ConfigError: Fix the field",
  ),
  "faster_rcnn_resnet101_v1_1024x1024_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i",
  ),
  "faster_rcnn_resnet101_v1_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i",
  ),
  "faster_rcnn_resnet101_v1_800x1333_coco17_gpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "faster_rcnn_resnet152_v1_1024x1024_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i",
  ),
  "faster_rcnn_resnet152_v1_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i",
  ),
  "faster_rcnn_resnet50_v1_1024x1024_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i",
  ),
  "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i",
  ),
  "faster_rcnn_resnet50_v1_800x1333_coco17_gpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w",
  ),
  "faster_rcnn_resnet50_v1_fpn_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i",
  ),
  "pipeline.config": (
    "fail: checkpoint_not_found:e input_path_missing:e input_path_missing:w",
    "fail: input_path_missing:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_missing:w data_shard_missing:w",
  ),
  "resnet50_od_keypoints.config": (
    "fail: input_path_missing:e no_fine_tune_checkpoint:w input_path_missing:w",
    "fail: input_path_missing:e checkpoint_version_v1:e checkpoint_type_mismatch:e meta_architecture_mismatch:e input_path_missing:w data_shard_missing:w",
  ),
  "ssd_efficientdet_d0_512x512_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_efficientdet_d1_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_efficientdet_d2_768x768_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_efficientdet_d4_1024x1024_coco17_tpu-32.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_efficientdet_d5_1280x1280_coco17_tpu-32.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_efficientdet_d6_1408x1408_coco17_tpu-32.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_efficientdet_d7_1536x1536_coco17_tpu-32.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_mobilenet_v2_320x320_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_resnet101_v1_fpn_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_resnet152_v1_fpn_1024x1024_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_resnet152_v1_fpn_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_resnet50_v1_fpn_1024x1024_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e feature_extractor_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config": (
    "fail: placeholder_path:e input_path_placeholder:e input_path_placeholder:w tf1_config_field:i tf1_config_field:i",
    "fail: input_path_placeholder:e checkpoint_type_mismatch:e input_path_placeholder:w data_shard_missing:w tf1_config_field:i tf1_config_field:i num_classes_differ:i",
  ),
  "bitewing_efficientdet_d0": (
    "fail: checkpoint_not_found:e input_path_missing:e input_path_missing:w tf1_config_field:i tf1_config_field:i tf1_config_field:i",
    "fail: input_path_missing:e input_path_missing:w data_shard_missing:w tf1_config_field:i tf1_config_field:i tf1_config_field:i",
  ),
  "sign_language_ssd_mobilenet_v2_fpnlite_320": (
    "fail: checkpoint_not_found:e input_path_missing:e relative_checkpoint_path:w input_path_missing:w tf1_config_field:i tf1_config_field:i tf1_config_field:i",
    "fail: input_path_missing:e input_path_missing:w data_shard_missing:w tf1_config_field:i tf1_config_field:i tf1_config_field:i",
  ),
}
NO_SCHEMA_NOTE = "the OD API's schema is not available here, so unknown or misspelt fields"

# Run by each environment's Python (and the protobuf 3.20 venv's): reads the
# cases as JSON on stdin, prints what od_guard says about each.
_VERDICTS = r"""
import json, sys
from od_guard import errors
from od_guard.odapi import config_schema, preflight
out = {"route": config_schema.load().route, "verdicts": {}, "reports": {}}
for name, config, checkpoint in json.load(sys.stdin):
  try:
    report = preflight.check_static(config, checkpoint=checkpoint).to_dict()
  except errors.OdGuardError as e:
    out["verdicts"][name] = f"{type(e).__name__}: " + " ".join(e.fix.split()[:3]).rstrip(":")
    continue
  out["verdicts"][name] = report["verdict"]["decision"] + ": " + " ".join(
    f["code"] + ":" + f["severity"][0] for f in report["findings"])
  out["reports"][name] = {k: report[k] for k in ("findings", "not_checked", "config")}
out["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(out))
"""


def _cases() -> list[tuple[str, str, str | None]]:
  """(case name, config, checkpoint override) for the EXPECTED table."""
  sign = str(SIGN_LANGUAGE / "checkpoint")
  cases = []
  for path in sorted(ZOO.glob("*.config")):
    cases += [(path.name, str(path), None), (path.name + " +sign", str(path), sign)]
  for user in (BITEWING, SIGN_LANGUAGE):
    config_path = str(user / "pipeline.config")
    cases += [
      (user.name, config_path, None),
      (user.name + " +own", config_path, str(user / "checkpoint")),
    ]
  return cases


def _expected() -> dict[str, str]:
  out = {}
  for name, (as_is, with_checkpoint) in EXPECTED.items():
    out[name] = as_is
    out[name + (" +sign" if name.endswith(".config") else " +own")] = with_checkpoint
  return out


def run_verdicts(python: str, cwd: pathlib.Path, *, env: dict | None = None) -> dict:
  """Runs _VERDICTS under `python` (with this tree's od_guard first on its path)."""
  r = subprocess.run(
    [python, "-c", _VERDICTS],
    input=json.dumps(_cases()),
    capture_output=True,
    text=True,
    cwd=cwd,  # relative fine_tune_checkpoint paths resolve here: absent, as in CI
    timeout=600,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", **(env or {})),
  )
  assert r.returncode == 0, r.stderr
  return json.loads(r.stdout)


def _routes_here() -> list[str]:
  """The schema routes this environment has."""
  here = []
  for route in config_schema.ROUTES:
    try:
      config_schema.load(route)
    except config_schema.OdApiUnavailableError:
      continue
    here.append(route)
  return here


def _default_route_from_facts() -> str:
  """What this environment is: OD API installed or not, and whether importing
  its generated modules works (tried in a fresh interpreter, not predicted)."""
  if config_schema.protos_dir() is None:
    return config_schema.NONE
  r = subprocess.run(
    [sys.executable, "-c", "from object_detection.protos import pipeline_pb2"],
    capture_output=True,
    text=True,
    timeout=120,
  )
  if r.returncode == 0:
    return config_schema.GENERATED
  assert "Descriptors cannot be created directly" in r.stderr, r.stderr
  return config_schema.DESCRIPTORS


def test_the_default_route_is_the_best_this_environment_has():
  assert config_schema.load().route == _default_route_from_facts()


def test_the_route_can_be_forced_and_a_wrong_name_is_a_usage_error(monkeypatch):
  monkeypatch.setenv(config_schema.ENV, "none")
  assert config_schema.load().route == config_schema.NONE
  monkeypatch.setenv(config_schema.ENV, "protobuf")
  with pytest.raises(errors.UsageError) as e:
    config_schema.load()
  assert e.value.received == "OD_GUARD_CONFIG_SCHEMA='protobuf'"
  assert e.value.fix == "Set it to one of auto, generated, descriptors, none, or unset it."


@needs_realworld
@pytest.mark.parametrize("route", _routes_here())
def test_shared_configs_get_the_same_verdicts_on_every_route_here(route, tmp_path):
  got = run_verdicts(sys.executable, tmp_path, env={config_schema.ENV: route})
  assert got["route"] == route
  changed = {
    k: (v, _expected().get(k)) for k, v in got["verdicts"].items() if v != _expected().get(k)
  }
  # A new diagnosis changes rows on every route alike: `python tests/static_config_test.py
  # --table` prints the table as this environment gives it.
  assert not changed, changed
  assert not got["tensorflow_imported"]
  for name, report in got["reports"].items():
    assert any(NO_SCHEMA_NOTE in n for n in report["not_checked"]) == (route == "none"), name


@needs_realworld
def test_reports_are_the_same_on_every_route_here(tmp_path):
  """Beyond the verdicts: every finding's text, and the config as read."""
  routes = _routes_here()
  reports = {
    route: run_verdicts(sys.executable, tmp_path, env={config_schema.ENV: route})["reports"]
    for route in routes
  }
  for route in routes[1:]:
    for name, report in reports[route].items():
      reference = reports[routes[0]][name]
      assert report["findings"] == reference["findings"], (route, name)
      assert report["config"] == reference["config"], (route, name)


def _parse_on_every_route(path: pathlib.Path) -> dict[str, object]:
  """route -> FineTuneConfig, or the ConfigError raised."""
  out = {}
  for route in _routes_here():
    try:
      out[route] = config.read(str(path), config.parse(str(path), route=route))
    except config.ConfigError as e:
      out[route] = e
  return out


_SYNTAX = """# Every form of protobuf's text format, in fields the preflight reads.
model <
  ssd {
    num_classes: 0x5;  # hex, and a separator
    image_resizer { fixed_shape_resizer { height: 256 width: 320 } }
    feature_extractor: {
      type: "ssd_mobilenet_v2_" 'fpn_keras'  # adjacent strings join
      depth_multiplier: 0.5, use_depthwise: t
    }
    anchor_generator { ssd_anchor_generator { aspect_ratios: [1.0, 2.0, 0.5] } }
  }
>
train_config: {
  fine_tune_checkpoint: "models/\\x73sd/ckpt-0"
  fine_tune_checkpoint_type: "classification"
  data_augmentation_options: [{ random_horizontal_flip { } }, { random_crop_image { } }]
}
train_config {
  fine_tune_checkpoint_type: "detection"  # repeated: merged, the last value wins
  fine_tune_checkpoint_version: 2
  use_bfloat16: True
}
train_input_reader { label_map_path: "C:\\\\data\\\\" }  # a string ending in an escaped backslash
"""


def test_every_text_format_form_reads_alike_on_every_route(tmp_path):
  path = tmp_path / "pipeline.config"
  path.write_text(_SYNTAX)
  read = _parse_on_every_route(path)
  for route, got in read.items():
    assert got == read["none"], route
  expected = {
    "path": str(path),
    "meta_architecture": "ssd",
    "feature_extractor_type": "ssd_mobilenet_v2_fpn_keras",
    "num_classes": 5,
    "add_background_class": True,
    "use_depthwise": True,
    "depth_multiplier": 0.5,
    "image_size": [256, 320],
    "fine_tune_checkpoint": "models/ssd/ckpt-0",
    "fine_tune_checkpoint_type": "detection",
    "effective_checkpoint_type": "detection",
    "fine_tune_checkpoint_version": "V2",
    "version_set": True,
    "run_dummy_computation": True,
    "use_bfloat16": True,
  }
  got = read["none"].to_dict()
  assert {k: got[k] for k in expected} == expected


def test_a_minimal_config_gets_the_protos_defaults_on_every_route(tmp_path):
  path = tmp_path / "pipeline.config"
  path.write_text("model { faster_rcnn { image_resizer { keep_aspect_ratio_resizer { } } } }")
  read = _parse_on_every_route(path)
  for route, got in read.items():
    assert got == read["none"], route
  got = read["none"]
  assert (got.image_size, got.fine_tune_checkpoint_version, got.version_set) == (
    (1024, 1024),
    "V1",
    False,
  )
  assert (got.effective_checkpoint_type, got.run_dummy_computation) == ("classification", True)


_FIX_FIELD = "Fix the field at the line and column named above"


@pytest.mark.parametrize(
  "text,where,message,fix",
  [
    (
      "model { ssd { num_classes: three } }",
      "1:28",
      "Couldn't parse integer: three.",
      _FIX_FIELD,
    ),
    (
      'model { ssd { num_classes: "3" } }',
      "1:28",
      'Couldn\'t parse integer: "3".',
      _FIX_FIELD,
    ),
    (
      "model { ssd { num_classes: 3 } }\ntrain_config { fine_tune_checkpoint: PATH_TO_BE_CONFIGURED }",
      "2:38",
      "Expected string but found: 'PATH_TO_BE_CONFIGURED'.",
      "Quote the value: string fields need double quotes",
    ),
    (
      'model { ssd { num_classes: 3 } }\ntrain_config { fine_tune_checkpoint: "x }',
      "2:38",
      "String missing ending quote: '\"x }'.",
      _FIX_FIELD,
    ),
    (
      "model { ssd { feature_extractor { use_depthwise: maybe } } }",
      "1:50",
      'Expected "true" or "false".',
      _FIX_FIELD,
    ),
    ("model { ssd { num_classes: 3 }", "1:30", 'Expected "}".', _FIX_FIELD),
    (
      "train_config { fine_tune_checkpoint_version: V3 }\nmodel { ssd { } }",
      "1:46",
      'Enum type "object_detection.protos.CheckpointVersion" has no value named V3.',
      _FIX_FIELD,
    ),
    ("model { ssd { num_classes 3 } }", "1:27", 'Expected ":"', _FIX_FIELD),
    (
      "model { ssd { } }\ntrain_config { [google.internal_extension] { x: 1 } }",
      "2:",
      "",
      _FIX_FIELD,
    ),
    ("model { ssd { num_classes: [1, 2] } }", "1:", "", _FIX_FIELD),
    ("model: 3", "1:", "", _FIX_FIELD),
  ],
  ids=[
    "integer",
    "string-for-integer",
    "unquoted-placeholder",
    "unterminated",
    "bool",
    "brace",
    "enum",
    "colon",
    "extension",
    "list-for-scalar",
    "scalar-for-message",
  ],
)
def test_invalid_configs_are_config_errors_on_every_route(tmp_path, text, where, message, fix):
  path = tmp_path / "pipeline.config"
  path.write_text(text)
  for route, got in _parse_on_every_route(path).items():
    assert isinstance(got, config.ConfigError), route
    assert got.what.startswith(f"{str(path)!r} is not a valid pipeline config: {where}"), (
      route,
      got.what,
    )
    assert message in got.what, (route, got.what)
    assert got.fix.startswith(fix), (route, got.fix)


def test_a_misspelt_field_is_an_error_with_the_schema_and_noted_without(tmp_path, monkeypatch):
  path = tmp_path / "pipeline.config"
  path.write_text(
    'model { ssd { num_classes: 3 feature_extractor { typo: "x" } } }\n'
    'train_config { fine_tune_checkpoint_type: "detection" }'
  )
  for route, got in _parse_on_every_route(path).items():
    if route == config_schema.NONE:
      assert got.num_classes == 3
      continue
    assert isinstance(got, config.ConfigError), route
    assert 'has no field named "typo"' in got.what, got.what
    assert got.fix.startswith("Fix the field at the line and column named above; field names")
  from od_guard.odapi import preflight

  monkeypatch.setenv(config_schema.ENV, config_schema.NONE)  # as where the OD API is absent
  report = preflight.check_static(str(path))
  assert [f.code for f in report.findings] == ["no_fine_tune_checkpoint"]
  assert report.not_checked[0] == (
    "field names and values outside those the preflight reads: the OD API's schema is not "
    "available here, so unknown or misspelt fields were not checked (install the OD API for "
    "the full schema)"
  )


def test_a_model_section_without_a_meta_architecture_is_an_error(tmp_path):
  path = tmp_path / "pipeline.config"
  path.write_text("model { }\ntrain_config { }")
  for route, got in _parse_on_every_route(path).items():
    assert isinstance(got, config.ConfigError), route
    assert got.what == f"{str(path)!r} has no model {{ ... }} section."


_KINDS = {2: "float", 5: "int32", 8: "bool", 9: "string", 11: "message", 14: "enum"}


def test_the_partial_schema_is_the_od_apis_own():
  """config_text's types and defaults, against the OD API's descriptors."""
  if config_schema.protos_dir() is None:
    pytest.skip("the OD API is not installed here (the odapi and modern environments have it)")
  route = config_schema.GENERATED if _default_route_from_facts() == "generated" else "descriptors"
  pool = config_schema.load(route).message_class.DESCRIPTOR.file.pool
  for message, fields in config_text.PARTIAL_SCHEMA.items():
    descriptor = pool.FindMessageTypeByName(f"{config_text.PACKAGE}.{message}")
    for name, field in fields.items():
      real = descriptor.fields_by_name[name]
      assert _KINDS[real.type] == field.kind, (message, name)
      # protobuf 7 dropped FieldDescriptor.label for is_repeated
      repeated = real.is_repeated if hasattr(real, "is_repeated") else real.label == 3
      assert not repeated, (message, name)
      if field.kind == "message":
        assert real.message_type.name == field.message, (message, name)
        continue
      assert real.default_value == field.default, (message, name)
      if field.kind == "enum":
        assert real.enum_type.name == field.message, (message, name)
        assert [(v.name, v.number) for v in real.enum_type.values] == list(field.enum)
    for oneof, members in config_text.ONEOFS.get(message, {}).items():
      assert [f.name for f in descriptor.oneofs_by_name[oneof].fields] == list(members)


_PROTOC3 = """raise SystemExit("executed")
from google.protobuf import descriptor as _descriptor
DESCRIPTOR = _descriptor.FileDescriptor(
  name='x.proto',
  package='x',
  serialized_pb=b'\\n\\x07x.proto\\x12\\x01x\\"\\x05\\n\\x03Abc'
  ,
  dependencies=[])
"""


@pytest.mark.parametrize(
  "source",
  [
    _PROTOC3,
    _PROTOC3.replace("b'\\n", "_b('\\n").replace("Abc'", "Abc')"),  # protoc 3.0-3.5
    _PROTOC3.replace("x.proto\\x12", "x.proto' b'\\x12"),  # implicit concatenation
    "raise SystemExit\nDESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
    "b'\\n\\x07x.proto\\x12\\x01x\\\"\\x05\\n\\x03Abc')\n",  # protoc >= 3.20
  ],
  ids=["protoc-3", "protoc-3.0-_b", "concatenated", "AddSerializedFile"],
)
def test_serialized_descriptors_are_decoded_never_executed(source):
  from google.protobuf import descriptor_pb2

  data = config_schema.serialized_descriptor(source, "x_pb2.py")
  assert data == config_schema.serialized_descriptor_from_ast(source, "x_pb2.py")
  proto = descriptor_pb2.FileDescriptorProto.FromString(data)
  assert (proto.name, proto.package, proto.message_type[0].name) == ("x.proto", "x", "Abc")


def test_the_quick_scan_reads_every_installed_protos_descriptor_as_ast_does():
  directory = config_schema.protos_dir()
  if directory is None:
    pytest.skip("the OD API is not installed here (the odapi and modern environments have it)")
  files = sorted(directory.glob("*_pb2.py"))
  assert len(files) > 30
  for path in files:
    source = path.read_text()
    match = config_schema._LITERAL.search(source)
    assert match and config_schema._literal_at(source, match.end()), path.name  # the quick way
    assert config_schema.serialized_descriptor(
      source, path.name
    ) == config_schema.serialized_descriptor_from_ast(source, path.name)


def test_the_model_tier_asks_for_the_od_apis_own_message_class():
  path = ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config"
  parsed = config.parse(str(path))
  route = config_schema.load().route
  if route == config_schema.GENERATED:
    assert config.odapi_message(str(path), parsed) is parsed
    return
  with pytest.raises(config.OdApiUnavailableError) as e:
    config.odapi_message(str(path), parsed)
  if route == config_schema.NONE:
    assert e.value.what == "The TF2 Object Detection API is not installed here."
  else:
    assert "Descriptors cannot be created directly" in e.value.received
    assert "protobuf==3.20.3" in e.value.fix


def _install_requires() -> list[str]:
  parser = configparser.ConfigParser()
  parser.read(REPO / "setup.cfg")
  return parser["options"]["install_requires"].split()


@pytest.mark.installs
@needs_realworld
def test_protobuf_3_20_with_the_od_api_installed_without_dependencies(tmp_path):
  """(d): protobuf 3.20.3 and the OD API's files (--no-deps), no TensorFlow;
  od_guard's own dependencies pinned as in the plain environment, but for
  TensorBoard (2.21 needs protobuf >= 6.31: pip picks the newest that takes 3.20)."""
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  pins = [
    line
    for line in (REPO / "constraints" / "plain.txt").read_text().splitlines()
    if line and not line.startswith(("#", "protobuf==", "tensorboard=="))
  ]
  (tmp_path / "constraints.txt").write_text("\n".join(pins) + "\n")
  pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
  for args in (
    ["-c", str(tmp_path / "constraints.txt"), "protobuf==3.20.3", *_install_requires()],
    ["--no-deps", "tf-models-research-object-detection==2.8.0.post1"],
  ):
    r = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
  got = run_verdicts(python, tmp_path)
  assert got["route"] == config_schema.GENERATED
  assert got["verdicts"] == run_verdicts(sys.executable, tmp_path)["verdicts"]  # as here
  assert not got["tensorflow_imported"]
  r = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, text=True)
  assert "No module named 'tensorflow'" in r.stderr
  # The object graph's proto, which od_guard reads from TensorBoard's copy.
  r = subprocess.run(
    [python, "-c", "from tensorboard.compat.proto import trackable_object_graph_pb2"],
    capture_output=True,
    text=True,
  )
  assert r.returncode == 0, r.stderr


def _print_table() -> None:
  """Prints EXPECTED's rows as this environment's default route gives them."""
  import tempfile

  with tempfile.TemporaryDirectory() as cwd:
    verdicts = run_verdicts(sys.executable, pathlib.Path(cwd))["verdicts"]
  for name in EXPECTED:
    other = name + (" +sign" if name.endswith(".config") else " +own")
    print(f"  {name!r}: (\n    {verdicts[name]!r},\n    {verdicts[other]!r},\n  ),")


if __name__ == "__main__":
  if sys.argv[1:] == ["--table"]:
    sys.exit(_print_table())
  sys.exit(pytest.main([__file__, "-q"]))
