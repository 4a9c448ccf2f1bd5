"""Values in the OD API preflight: checkpoints TF wrote from a model the OD
API built, damaged on purpose or saved poisoned, found by `check`,
`check --static --values` and the drop-in before step one."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from od_guard.checkpoint import tensor_bundle
from od_guard.checkpoint import verify
from od_guard.odapi import preflight
from od_guard.restore import findings as findings_lib
from od_guard.restore import value_health

from conftest import REPO

pytestmark = pytest.mark.odapi


def _copy(prefix: str, directory: pathlib.Path) -> str:
  directory.mkdir(parents=True, exist_ok=True)
  src = pathlib.Path(prefix)
  for f in src.parent.glob(src.name + ".*"):
    shutil.copy(f, directory / f.name)
  return str(directory / src.name)


@pytest.fixture(scope="module")
def cases(odapi_world, tmp_path_factory) -> dict[str, str]:
  """name -> checkpoint prefix, each a detection checkpoint saved by TF."""
  import tensorflow as tf

  from od_guard.testing import tiny_odapi

  root = tmp_path_factory.mktemp("odapi_values")
  good = odapi_world.checkpoints["detection"]
  out = {"good": good}
  model = tiny_odapi.build_model(odapi_world.config(checkpoint=""))
  tf.train.Checkpoint(model=model).restore(good).expect_partial()
  backbone = model._feature_extractor.classification_backbone  # pylint: disable=protected-access
  head = model._box_predictor  # pylint: disable=protected-access

  def poisoned(name: str, var, value) -> None:
    before = var.numpy()
    var.assign(value)
    out[name] = tiny_odapi.save_detection_checkpoint(model, str(root / name))
    var.assign(before)

  kernel = next(v for v in backbone.variables if "kernel" in v.name)
  value = kernel.numpy()
  value.flat[0] = np.nan
  poisoned("nan_backbone", kernel, value)
  head_var = next(v for v in head.variables if "kernel" in v.name)
  poisoned("nan_box_head", head_var, np.full(head_var.shape, np.inf, np.float32))
  variance = next(v for v in backbone.variables if "moving_variance" in v.name)
  poisoned("zero_variance", variance, np.zeros(variance.shape, np.float32))

  flipped = _copy(good, root / "flipped")
  report = verify.verify(flipped)
  key = next(t.key for t in report.tensors if t.component == "backbone" and "kernel" in t.path)
  e = next(e for e in tensor_bundle.read_index(flipped + ".index").entries if e.key == key)
  shard = pathlib.Path(tensor_bundle.shard_path(flipped, e.shard_id, 1))
  data = bytearray(shard.read_bytes())
  data[e.offset + e.size // 2] ^= 0x10
  shard.write_bytes(bytes(data))
  out["flipped"] = flipped

  truncated = _copy(good, root / "truncated")
  shard = pathlib.Path(tensor_bundle.shard_path(truncated, 0, 1))
  with open(shard, "r+b") as f:
    f.truncate(shard.stat().st_size // 2)
  out["truncated"] = truncated
  return out


def _problems(report) -> dict[str, str]:
  return {f.code: f.severity for f in report.findings if f.severity != findings_lib.INFO}


EXPECTED = {
  "flipped": (value_health.CORRUPT, findings_lib.ERROR),
  "truncated": (value_health.CORRUPT, findings_lib.ERROR),
  "nan_backbone": (value_health.NAN_INF_RESTORED, findings_lib.ERROR),
  # Under "detection" the box predictor is not restored.
  "nan_box_head": (value_health.NAN_INF_UNRESTORED, findings_lib.WARNING),
  "zero_variance": (value_health.NONPOSITIVE_VARIANCE, findings_lib.WARNING),
}


def test_a_good_checkpoint_passes_with_its_values_verified(odapi_world, cases):
  report = preflight.check(odapi_world.write_config("values_good", checkpoint=cases["good"]))
  assert not report.verdict.failed
  codes = {f.code for f in report.findings}
  assert value_health.VALUES_VERIFIED in codes
  assert not codes & set(value_health.CODES) - {value_health.VALUES_VERIFIED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_model_tier_finds_it(odapi_world, cases, name):
  report = preflight.check(odapi_world.write_config(f"values_{name}", checkpoint=cases[name]))
  code, severity = EXPECTED[name]
  assert _problems(report).get(code) == severity, _problems(report)
  assert report.verdict.failed is (severity == findings_lib.ERROR)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_static_tier_with_values_finds_it(odapi_world, cases, name):
  config = odapi_world.write_config(f"static_values_{name}", checkpoint=cases[name])
  code, severity = EXPECTED[name]
  if name == "nan_box_head":  # without a model, every model value counts as restored
    code, severity = value_health.NAN_INF_RESTORED, findings_lib.ERROR
  assert _problems(preflight.check_static(config, values=True)).get(code) == severity
  if name != "truncated":  # a truncated shard cuts the object graph the static tier reads
    assert code not in _problems(preflight.check_static(config))


def _drop_in(
  config: str, model_dir: pathlib.Path, *flags: str, timeout: int, env: dict[str, str]
) -> subprocess.CompletedProcess:
  """Runs `python -m od_guard.model_main_tf2` on `config`, as a user would, with
  `env` added to this process's environment."""
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "od_guard.model_main_tf2",
      f"--pipeline_config_path={config}",
      f"--model_dir={model_dir}",
      *flags,
    ],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=dict(os.environ, **env),
  )


def test_the_drop_in_stops_a_corrupt_restore_before_step_one(odapi_world, cases, tmp_path):
  config = odapi_world.write_config("dropin_flipped", checkpoint=cases["flipped"])
  model_dir = tmp_path / "train"
  r = _drop_in(
    config,
    model_dir,
    "--num_train_steps=1",
    timeout=600,
    env={"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
  )
  assert r.returncode == 1, r.stderr[-3000:]
  assert f"({value_health.CORRUPT})" in r.stdout
  assert not list(model_dir.glob("ckpt-*.index"))


def test_the_drop_in_stops_a_tf1_checkpoint_before_importing_tensorflow(
  odapi_world, tf1_checkpoint, tmp_path
):
  broken = tmp_path / "broken"
  (broken / "tensorflow").mkdir(parents=True)
  (broken / "tensorflow" / "__init__.py").write_text(
    'raise ImportError("OD_GUARD_TEST tensorflow imported")\n'
  )
  config = odapi_world.write_config("dropin_tf1", checkpoint=tf1_checkpoint)
  model_dir = tmp_path / "train"
  r = _drop_in(
    config,
    model_dir,
    timeout=120,
    env={"PYTHONPATH": os.pathsep.join([str(broken), str(REPO)])},
  )
  assert r.returncode == 1, r.stderr[-3000:]
  assert "OD_GUARD_TEST" not in r.stderr
  assert "(tf1_checkpoint)" in r.stdout
  assert (model_dir / "od_guard" / "report.json").exists()
