"""`od-guard check` and `od-guard doctor` as a user runs them."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import BITEWING
from conftest import HAS_ODAPI
from conftest import REPO
from conftest import SIGN_LANGUAGE
from conftest import ZOO
from conftest import ZOO_COPIES
from conftest import cli_in_process
from conftest import needs_realworld
from conftest import run_cli
from conftest import zoo_config_names

needs_odapi = pytest.mark.odapi


@needs_odapi
@needs_realworld
def test_static_check_real_user_checkpoints_from_the_index_alone():
  for user, description, classes in (
    (SIGN_LANGUAGE, "SSD MobileNet v2 FPNLite", 10),
    (BITEWING, "SSD EfficientNet-b0 BiFPN", 5),
  ):
    r = run_cli(
      "check",
      "--static",
      "--pipeline_config_path",
      str(user / "pipeline.config"),
      "--checkpoint",
      str(user / "checkpoint"),
      "--json",
      check_tf=True,
    )
    # The users' configs read TFRecords and label maps from their machines (a
    # relative Tensorflow/workspace/... and Colab's /content/...): training here
    # would fail at the dataset, so the verdict is fail; the checkpoint itself
    # only lacks its data shard.
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert d["fingerprint"]["description"] == description
    assert d["fingerprint"]["num_classes"] == classes == d["config"]["num_classes"]
    assert d["verdict"]["decision"] == "fail"
    assert [
      (f["code"], f["severity"], f["data"].get("reader", ""))
      for f in d["findings"]
      if f["severity"] != "info"
    ] == [
      ("input_path_missing", "error", "train_input_reader"),
      ("input_path_missing", "warning", "eval_input_reader[0]"),
      ("data_shard_missing", "warning", ""),
    ]
    assert any("data shard is missing" in n for n in d["not_checked"])
    assert r.stderr.strip().splitlines()[-1] == "TF_IMPORTED=False"


@needs_odapi
@needs_realworld
def test_static_check_fails_under_strict_on_index_only():
  r = run_cli(
    "check",
    "--static",
    "--policy",
    "strict",
    "--pipeline_config_path",
    str(SIGN_LANGUAGE / "pipeline.config"),
    "--checkpoint",
    str(SIGN_LANGUAGE / "checkpoint"),
  )
  # Strict makes the missing data shard an error too (the train input paths
  # are one already; the eval ones stay a warning).
  assert r.returncode == 1
  assert r.stdout.startswith("od_guard preflight: FAIL (2 errors, 1 warning)")
  assert "(data_shard_missing)" in r.stdout.split("[!]")[0]


@needs_odapi
@needs_realworld
def test_the_users_own_path_is_reported_missing():
  # The user's config names the zoo checkpoint on their machine.
  r = cli_in_process(
    "check", "--static", "--pipeline_config_path", str(BITEWING / "pipeline.config")
  )
  assert r.returncode == 1
  assert "fine_tune_checkpoint names no checkpoint" in r.stdout


@needs_odapi
@pytest.mark.parametrize("config", zoo_config_names())
def test_every_zoo_config_parses_or_fails_clearly(config):
  r = cli_in_process("check", "--static", "--json", "--pipeline_config_path", str(ZOO / config))
  if config == "centernet_resnet50_v2_512x512_coco17_tpu-8.config":
    # Uses a Google-internal input-reader extension the public protos lack.
    assert r.returncode == 2
    d = json.loads(r.stdout)
    assert d["error"] == "ConfigError" and "is not a valid pipeline config" in d["what"]
    return
  if config in (
    "centernet_hg104_512x512_coco17_tpu-8.config",
    "centernet_hg104_512x512_kpts_coco17_tpu-8.config",
  ):
    # Shipped with an unquoted PATH_TO_BE_CONFIGURED.
    assert r.returncode == 2
    d = json.loads(r.stdout)
    assert d["error"] == "ConfigError" and d["fix"].startswith("Quote the value")
    return
  codes = [f["code"] for f in json.loads(r.stdout)["findings"]]
  text = (ZOO / config).read_text()
  if "fine_tune_checkpoint:" not in text:
    # resnet50_od_keypoints reads its data from Google-internal /cns/ paths:
    # training would fail at the dataset.
    assert r.returncode == 1
    assert codes == ["input_path_missing", "no_fine_tune_checkpoint", "input_path_missing"]
    return
  assert r.returncode == 1, r.stderr
  if '"PATH_TO_BE_CONFIGURED' in text.split("fine_tune_checkpoint:")[1].split("\n")[0]:
    assert "placeholder_path" in codes
  else:  # Google-internal /cns/ paths, or "none"
    assert "checkpoint_not_found" in codes


@needs_odapi
def test_malformed_config_is_a_clear_error(tmp_path):
  bad = tmp_path / "pipeline.config"
  bad.write_text("model { ssd { num_classes: three } }")
  r = cli_in_process("check", "--static", "--pipeline_config_path", str(bad))
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert "ConfigError: " in r.stderr and "1:28" in r.stderr


@needs_odapi
def test_checkpoint_given_as_config_is_a_clear_error(keras_tf_checkpoint):
  r = cli_in_process("check", "--static", "--pipeline_config_path", keras_tf_checkpoint + ".index")
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert "is not a text file, so it cannot be a pipeline config" in r.stderr


def test_model_tier_without_a_usable_od_api_says_so(keras_tf_checkpoint):
  # The static tier reads the config from the protos' descriptors here
  # (tests/static_config_test.py); building the model needs the OD API itself.
  if HAS_ODAPI:
    pytest.skip("the OD API works here")
  r = run_cli(
    "check",
    "--json",
    "--pipeline_config_path",
    str(ZOO_COPIES / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config"),
    "--checkpoint",
    keras_tf_checkpoint,
    env={"OD_GUARD_COMPAT": "off"},  # with the compat layer, the OD API works here too
  )
  assert r.returncode == 2
  d = json.loads(r.stdout)
  assert d["error"] == "OdApiUnavailableError"
  assert "Descriptors cannot be created directly" in d["received"]
  assert "protobuf==3.20.3" in d["fix"]


def test_doctor_json():
  r = run_cli("doctor", "--json", unset=("OD_GUARD_COMPAT",))
  d = json.loads(r.stdout)
  assert d["schema"] == "od_guard.doctor/1"
  by_name = {c["name"]: c for c in d["checks"]}
  # With the compat layer (the default), nothing blocks the OD API in either
  # environment; what it clears is a warning.
  assert r.returncode == 0 and d["ok"], r.stdout
  assert by_name["tf_slim.control_flow_ops"]["status"] == "warning"
  import tensorflow as tf

  if not tf.__version__.startswith("2.15"):
    # Without it, the modern environment's OD API files next to TF 2.20 cannot run.
    r = run_cli("doctor", "--json", env={"OD_GUARD_COMPAT": "off"})
    d = json.loads(r.stdout)
    by_name = {c["name"]: c for c in d["checks"]}
    assert r.returncode == 1 and not d["ok"]
    assert by_name["keras"]["status"] == "error"
    assert "TF_USE_LEGACY_KERAS=1" in by_name["keras"]["fix"]
    assert by_name["tf.estimator"]["status"] == "error"
    assert by_name["object_detection.protos"]["status"] == "error"
    assert "Descriptors cannot be created directly" in by_name["object_detection.protos"]["found"]


def _import_od_api_keras_layers(env: dict) -> subprocess.CompletedProcess:
  """Imports the first OD API module that needs Keras 2 (FreezableSyncBatchNorm
  subclasses tf.keras.layers.experimental.SyncBatchNormalization)."""
  return subprocess.run(
    [sys.executable, "-c", "from object_detection.core import freezable_sync_batch_norm"],
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )


@pytest.mark.parametrize("legacy", [None, "1"], ids=["legacy_keras_unset", "legacy_keras_1"])
def test_doctor_is_right_about_keras_3_without_legacy_keras(legacy):
  """What `od-guard doctor` says about Keras is what importing the OD API does,
  with TF_USE_LEGACY_KERAS unset and set; where it finds an error, the error it
  quotes is the real one and the fix it gives makes the import work."""
  if importlib.util.find_spec("object_detection") is None:
    pytest.skip("needs the OD API's files (both environments have them)")
  # The doctor without the compat layer, which would set TF_USE_LEGACY_KERAS itself.
  if legacy is None:
    given, unset = {"OD_GUARD_COMPAT": "off"}, ("TF_USE_LEGACY_KERAS",)
  else:
    given, unset = {"OD_GUARD_COMPAT": "off", "TF_USE_LEGACY_KERAS": legacy}, ()
  r = run_cli("doctor", "--json", env=given, unset=unset)
  keras = {c["name"]: c for c in json.loads(r.stdout)["checks"]}["keras"]
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env.update(given, TF_CPP_MIN_LOG_LEVEL="3")
  real = _import_od_api_keras_layers(env)
  if keras["status"] == "ok":
    assert real.returncode == 0, real.stderr[-2000:]
    return
  assert keras["status"] == "error" and real.returncode != 0
  assert real.stderr.strip().splitlines()[-1] in keras["fix"]
  fix = re.match(r"export (\w+)=(\S+)", keras["fix"])
  assert fix, keras["fix"]
  fixed = _import_od_api_keras_layers(dict(env, **{fix[1]: fix[2]}))
  assert fixed.returncode == 0, fixed.stderr[-2000:]


@needs_odapi
@needs_realworld
@pytest.mark.parametrize(
  "user,classes", [(SIGN_LANGUAGE, 10), (BITEWING, 5)], ids=["sign_language", "bitewing"]
)
def test_full_check_of_real_index_only_checkpoints(user, classes):
  # In a fresh interpreter: on TF 2.20 the compat layer must come before
  # TensorFlow's import, and this test process may have imported it already.
  code = (
    "import json, sys\n"
    "from od_guard.odapi import preflight\n"
    "r = preflight.check(sys.argv[1], checkpoint=sys.argv[2])\n"
    "print(json.dumps({'tier': r.tier, 'mode': r.restore.mode, 'decision': r.verdict.decision,\n"
    "  'problems': [(f.code, f.severity) for f in r.findings if f.severity != 'info'],\n"
    "  'coverage': {c.component: c.fraction for c in r.restore.coverage},\n"
    "  'classes': r.fingerprint.num_classes(r.config['add_background_class'])}))\n"
  )
  run = subprocess.run(
    [sys.executable, "-c", code, str(user / "pipeline.config"), str(user / "checkpoint")],
    capture_output=True,
    text=True,
    timeout=600,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3"),
  )
  assert run.returncode == 0, run.stderr[-3000:]
  report = json.loads(run.stdout.strip().splitlines()[-1])
  assert (report["tier"], report["mode"]) == ("model", "keys")
  # The users' TFRecords and label maps are not on this machine (see
  # test_static_check_real_user_checkpoints_from_the_index_alone).
  assert report["decision"] == "fail"
  assert [tuple(p) for p in report["problems"]] == [
    ("input_path_missing", "error"),
    ("input_path_missing", "warning"),
    ("data_shard_missing", "warning"),
  ]
  cov = report["coverage"]
  assert (cov["backbone"], cov["neck"], cov["box_head"], cov["class_head"]) == (1.0, 1.0, 0.0, 0.0)
  assert report["classes"] == classes
