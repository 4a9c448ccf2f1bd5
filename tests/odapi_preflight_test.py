"""The OD API preflight: each classic mistake, built for real, gets its diagnosis.

Every scenario writes a real config and uses checkpoints that TF wrote from a
model the OD API built. Where a restore can run, the test also runs the real
`tf.train.Checkpoint(**restore_from_objects(type)).restore()` and checks that
od_guard predicted exactly the variables whose values change.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from od_guard.checkpoint import inventory
from od_guard.odapi import model as odapi_model
from od_guard.odapi import preflight
from od_guard.restore import findings
from od_guard.restore import live_graph
from od_guard.restore import matching as restore_match
from od_guard.restore import policy as policy_lib

pytestmark = pytest.mark.odapi
SENTINEL = -7.25


def _real_restore(tf, config, checkpoint_type: str, prefix: str):
  """(predicted restored paths, paths whose values a real restore changes)."""
  model = odapi_model.build(config)
  roots = odapi_model.restore_roots(model, checkpoint_type)
  graph = live_graph.capture(roots, model={"model": model})
  report = restore_match.match(
    graph, inventory.read_inventory(prefix, object_graph=inventory.OBJECT_GRAPH_FULL)
  )
  variables = {id(v): v for v in model.variables}
  for v in variables.values():
    v.assign(tf.fill(v.shape, tf.constant(SENTINEL, v.dtype)))
  tf.train.Checkpoint(**roots).restore(prefix).expect_partial()
  changed = {
    graph.variables[uid].path for uid, v in variables.items() if not np.all(v.numpy() == SENTINEL)
  }
  return {b.path for b in report.restored}, changed, report


@pytest.mark.parametrize(
  "checkpoint,checkpoint_type,expect_restored",
  [
    ("detection", "detection", "backbone"),
    ("detection", "full", "everything"),
    ("detection", "classification", "nothing"),
    ("classification", "classification", "backbone"),
    ("renamed", "detection", "nothing"),
  ],
)
def test_prediction_equals_a_real_restore(
  odapi_world, tf, checkpoint, checkpoint_type, expect_restored
):
  config = odapi_world.config(checkpoint_type=checkpoint_type)
  predicted, changed, report = _real_restore(
    tf, config, checkpoint_type, odapi_world.checkpoints[checkpoint]
  )
  assert predicted == changed
  if expect_restored == "nothing":
    assert not predicted
  elif expect_restored == "everything":
    assert not report.missing and not report.not_requested
  else:
    assert report.coverage_of("backbone").fraction == 1.0


@pytest.mark.parametrize(
  "checkpoint,checkpoint_type", [("renamed", "detection"), ("detection", "classification")]
)
def test_unmatched_object_count_is_the_one_tf_asserts(odapi_world, tf, checkpoint, checkpoint_type):
  import re

  config = odapi_world.config(checkpoint_type=checkpoint_type)
  model = odapi_model.build(config)
  roots = odapi_model.restore_roots(model, checkpoint_type)
  prefix = odapi_world.checkpoints[checkpoint]
  report = restore_match.match(
    live_graph.capture(roots, model={"model": model}),
    inventory.read_inventory(prefix, object_graph=inventory.OBJECT_GRAPH_FULL),
  )
  with pytest.raises(AssertionError) as e:
    tf.train.Checkpoint(**roots).restore(prefix).expect_partial().assert_existing_objects_matched()
  (n,) = re.findall(r"Found (\d+) Python objects", str(e.value))
  assert report.unmatched_objects == int(n)


def test_good_fine_tune_passes(odapi_world):
  report = preflight.check(odapi_world.write_config("good"))
  assert report.verdict.decision == policy_lib.PASS, report.verdict.reasons
  assert report.tier == "model"
  cov = {c.component: c.fraction for c in report.restore.coverage}
  assert cov["backbone"] == 1.0 and cov["neck"] == 1.0
  assert cov["box_head"] == 0.0 and cov["class_head"] == 0.0  # not restored under "detection"
  assert report.fingerprint.feature_extractor_types == ("ssd_mobilenet_v2_keras",)


def test_classification_type_on_a_detection_checkpoint(odapi_world):
  report = preflight.check(odapi_world.write_config("cls", checkpoint_type="classification"))
  f = report.finding("checkpoint_type_mismatch")
  assert report.verdict.failed and f.severity == findings.ERROR
  assert f.fix == 'Set fine_tune_checkpoint_type: "detection"'
  assert "not bound to checkpointed values" in f.stock_outcome


def test_detection_type_on_a_classification_checkpoint(odapi_world):
  report = preflight.check_static(
    odapi_world.write_config("det_on_cls", checkpoint=odapi_world.checkpoints["classification"])
  )
  assert (
    report.finding("checkpoint_type_mismatch").fix
    == 'Set fine_tune_checkpoint_type: "classification"'
  )


def test_wrong_backbone_names_the_type_that_fits(odapi_world):
  report = preflight.check(
    odapi_world.write_config(
      "resnet", zoo="ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config", image_size=256
    )
  )
  f = report.finding("feature_extractor_mismatch")
  assert report.verdict.failed and f.severity == findings.ERROR
  assert f.data["fitting_types"] == ["ssd_mobilenet_v2_keras"]
  assert 'type: "ssd_mobilenet_v2_keras"' in f.fix
  assert report.restore is not None and report.restore.coverage_of("backbone").fraction == 0.0
  # Same-shaped batch norms in both networks are no evidence of a rename.
  assert report.finding("renamed_scopes") is None


def test_renamed_scopes_get_a_rename_map(odapi_world):
  report = preflight.check(
    odapi_world.write_config("renamed", checkpoint=odapi_world.checkpoints["renamed"])
  )
  f = report.finding("renamed_scopes")
  assert report.verdict.failed and f.severity == findings.ERROR
  assert report.finding("restore_scope_missing").severity == findings.INFO  # f is exact
  assert f.data["renames"][0]["old"] == "model/CustomExtractor/"
  assert f.data["renames"][0]["new"] == "model/_feature_extractor/"
  assert f.data["renames"][0]["count"] == len(report.restore.missing)


def test_renamed_scope_is_seen_statically_too(odapi_world):
  report = preflight.check_static(
    odapi_world.write_config("renamed_static", checkpoint=odapi_world.checkpoints["renamed"])
  )
  f = report.finding("restore_scope_missing")
  assert report.verdict.failed and f.severity == findings.ERROR
  assert f.data["renames"] == [
    {"old": "model/CustomExtractor/", "new": "model/_feature_extractor/", "count": 300}
  ]


def test_tf1_checkpoint(odapi_world, tf1_checkpoint):
  report = preflight.check(odapi_world.write_config("tf1", checkpoint=tf1_checkpoint))
  f = report.finding("tf1_checkpoint")
  assert report.verdict.failed and "object-based checkpoint" in f.stock_outcome
  assert report.restore is None


def test_weightless_checkpoint(odapi_world):
  report = preflight.check_static(
    odapi_world.write_config("weightless", checkpoint=odapi_world.checkpoints["weightless"])
  )
  assert report.finding("weightless_checkpoint").severity == findings.ERROR


def test_missing_version_defaults_to_v1(odapi_world):
  config = odapi_world.config()
  config.train_config.ClearField("fine_tune_checkpoint_version")
  from od_guard.testing import tiny_odapi

  path = tiny_odapi.write_pipeline_config(config, str(odapi_world.root / "v1.config"))
  f = preflight.check_static(path).finding("checkpoint_version_v1")
  assert f.fix == "Add to train_config: fine_tune_checkpoint_version: V2"
  assert f.stock_outcome == "ValueError: Checkpoint version should be V2"


def test_dummy_computation_disabled_under_classification(odapi_world):
  path = odapi_world.write_config(
    "nodummy",
    checkpoint=odapi_world.checkpoints["classification"],
    checkpoint_type="classification",
    run_fine_tune_checkpoint_dummy_computation=False,
  )
  assert preflight.check_static(path).finding("dummy_computation_disabled") is not None


@pytest.mark.parametrize(
  "suffix,code",
  [(".index", "checkpoint_path_is_file"), (".data-00000-of-00001", "checkpoint_path_is_file")],
)
def test_checkpoint_file_instead_of_prefix(odapi_world, suffix, code):
  prefix = odapi_world.checkpoints["detection"]
  report = preflight.check_static(odapi_world.write_config("file", checkpoint=prefix + suffix))
  f = report.finding(code)
  assert f.fix == f'Drop the file suffix: fine_tune_checkpoint: "{prefix}"'
  assert report.checkpoint.prefix == prefix  # still checked, at the right place


def test_directory_instead_of_prefix(odapi_world):
  prefix = odapi_world.checkpoints["detection"]
  report = preflight.check_static(
    odapi_world.write_config("dir", checkpoint=os.path.dirname(prefix))
  )
  assert prefix in report.finding("checkpoint_path_is_directory").fix


def test_placeholder_path(odapi_world):
  report = preflight.check_static(
    odapi_world.write_config("placeholder", checkpoint="PATH_TO_BE_CONFIGURED/checkpoint/ckpt-0")
  )
  assert report.verdict.failed and report.finding("placeholder_path") is not None


def test_relative_path_that_only_works_beside_the_config(odapi_world, tmp_path, monkeypatch):
  shutil.copytree(os.path.dirname(odapi_world.checkpoints["detection"]), tmp_path / "pre")
  from od_guard.testing import tiny_odapi

  config_path = tiny_odapi.write_pipeline_config(
    odapi_world.config(checkpoint="pre/ckpt-1"), str(tmp_path / "pipeline.config")
  )
  monkeypatch.chdir(odapi_world.root)
  f = preflight.check_static(config_path).finding("relative_checkpoint_path")
  assert f.severity == findings.ERROR and str(tmp_path / "pre" / "ckpt-1") in f.fix


def test_checkpoint_inside_model_dir(odapi_world):
  prefix = odapi_world.checkpoints["detection"]
  report = preflight.check_static(
    odapi_world.write_config("in_model_dir"), model_dir=os.path.dirname(prefix)
  )
  assert "cannot be same" in report.finding("checkpoint_in_model_dir").stock_outcome


def test_stale_checkpoint_in_model_dir(odapi_world, tmp_path):
  model_dir = tmp_path / "train"
  shutil.copytree(os.path.dirname(odapi_world.checkpoints["weightless"]), model_dir)
  report = preflight.check_static(odapi_world.write_config("stale"), model_dir=str(model_dir))
  f = report.finding("stale_checkpoint_in_model_dir")
  assert f.severity == findings.WARNING and "weightless" in f.detail
  strict = preflight.check_static(
    odapi_world.write_config("stale"), model_dir=str(model_dir), policy=policy_lib.preset("strict")
  )
  assert strict.verdict.failed


def test_num_classes_change_is_expected_under_detection(odapi_world):
  report = preflight.check(odapi_world.write_config("more_classes", num_classes=5))
  f = report.finding("num_classes_differ")
  assert f.severity == findings.INFO and report.verdict.decision == policy_lib.PASS
  assert f.title == "The checkpoint was trained for 3 classes; the config has 5."


def test_num_classes_change_fails_under_full(odapi_world):
  report = preflight.check(
    odapi_world.write_config("full_more", num_classes=5, checkpoint_type="full")
  )
  assert report.finding("num_classes_differ").severity == findings.ERROR
  assert report.restore.shape_mismatches and report.verdict.failed


def test_centernet_fine_tune_type_is_unsupported(odapi_world, tmp_path):
  from od_guard.testing import tiny_odapi

  config = tiny_odapi.load_pipeline_config(
    str(__import__("conftest").ZOO_COPIES / "center_net_deepmac_1024x1024_coco_tpu-128.config")
  )
  config.train_config.fine_tune_checkpoint = odapi_world.checkpoints["detection"]
  path = tiny_odapi.write_pipeline_config(config, str(tmp_path / "centernet.config"))
  report = preflight.check_static(path)
  f = report.finding("checkpoint_type_unsupported")
  assert f.fix == 'Set fine_tune_checkpoint_type: "detection"'
  assert '"fine_tune" is no longer supported for CenterNet' in f.stock_outcome


def test_index_only_checkpoint_warns_by_default_and_fails_strict_and_training(
  odapi_world, tmp_path
):
  shutil.copy(odapi_world.checkpoints["detection"] + ".index", tmp_path / "ckpt-1.index")
  path = odapi_world.write_config("index_only", checkpoint=str(tmp_path / "ckpt-1"))
  report = preflight.check(path)
  assert report.verdict.decision == policy_lib.WARN
  assert report.restore.mode == "keys" and report.restore.coverage_of("backbone").fraction == 1.0
  assert any("data shard is missing" in n for n in report.not_checked)
  assert preflight.check_static(path, policy=policy_lib.preset("strict")).verdict.failed
  assert preflight.check(path, training=True).verdict.failed


def test_lenient_policy_lets_missing_variables_through(odapi_world):
  path = odapi_world.write_config("renamed_lenient", checkpoint=odapi_world.checkpoints["renamed"])
  report = preflight.check(path, policy=policy_lib.preset("lenient"))
  assert report.verdict.decision == policy_lib.WARN


def test_backbone_threshold_is_checked_and_can_be_lowered(odapi_world):
  path = odapi_world.write_config(
    "renamed_threshold", checkpoint=odapi_world.checkpoints["renamed"]
  )
  f = preflight.check(path).finding("coverage_below_threshold")
  assert f is not None and f.data == {"component": "backbone", "fraction": 0.0, "threshold": 0.95}
  lowered = policy_lib.preset("default").replace(min_backbone_coverage=0.0)
  assert preflight.check(path, policy=lowered).finding("coverage_below_threshold") is None


def test_report_json_schema(odapi_world):
  d = preflight.check(odapi_world.write_config("json")).to_dict()
  assert d["schema"] == "od_guard.preflight/1"
  from od_guard.odapi import compat

  # "shims": the compat layer's shims the model was built with, present when any.
  assert d.get("shims", []) == list(compat.active())
  assert set(d) - {"shims"} == {
    "schema",
    "tier",
    "verdict",
    "config",
    "checkpoint",
    "fingerprint",
    "restore",
    "findings",
    "not_checked",
    "strategy",
    "timings",
  }
  assert d["fingerprint"]["feature_extractor_types"] == ["ssd_mobilenet_v2_keras"]
  assert d["fingerprint"]["num_classes"] == 3
  assert d["restore"]["schema"] == "od_guard.restore_report/1"
  assert d["verdict"]["decision"] == "pass"


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
