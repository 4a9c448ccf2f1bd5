"""Evaluation's and the export's checkpoint directory, a resumed run against
--num_train_steps, and model-builder errors, with the tiny real OD API world
(issue 24). The scenarios that need no model are in workflow_scenarios_test.py.

Stock outcomes, measured here (TF 2.15.1, OD API 2.8.0.post1, the tiny SSD
MobileNet V2, 2 shared cores; model_main_tf2 run with od_guard's tf-slim alias
only, which this TF needs to train at all):

* model_main_tf2 --checkpoint_dir=models/my_ssd_mobnet beside the existing
  models/my-ssd-mobnet (tensorflow/models#10483), --eval_timeout=20: "Waiting
  for new checkpoint at .../my_ssd_mobnet", then "Timed-out waiting for a
  checkpoint", exit 0 after 45 s; nothing evaluated.
* model_main_tf2 --num_train_steps=2000 (--checkpoint_every_n=1) in a
  model_dir whose checkpoint (ckpt-3) holds step 2000
  (nicknochnack/TFODCourse#82): exit 0 after 57 s, no "Step" line logged, no
  checkpoint saved: 0 steps trained.
* exporter_main_v2 with a 5-class config (--config_override) on a 3-class
  checkpoint: exit 0 after 98 s, a SavedModel written, no warning logged.
* exporter_main_v2's directory errors: see workflow_scenarios_test.py's docstring.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from od_guard.odapi import preflight
from od_guard.restore import findings

pytestmark = pytest.mark.odapi
REPO = pathlib.Path(__file__).resolve().parent.parent


def _run_dir(odapi_world) -> str:
  """Training's model_dir as evaluation and the export see it: the world's
  detection checkpoint with the state file TF wrote."""
  return os.path.dirname(odapi_world.checkpoints["detection"])


def _copy(src: str, dst: pathlib.Path, *, state: bool = True) -> pathlib.Path:
  shutil.copytree(src, dst)
  if not state:
    (dst / "checkpoint").unlink()
  return dst


def _passes(report) -> None:
  assert not report.verdict.failed, report.verdict.reasons
  assert report.restore is not None and not report.restore.missing
  assert not report.restore.shape_mismatches


# --- Correct directories: no false alarm -------------------------------------------------


@pytest.mark.parametrize("mode", [preflight.EVAL, preflight.EXPORT])
def test_the_training_runs_own_directory_passes(odapi_world, mode):
  _passes(
    preflight.check_eval(odapi_world.write_config("dirs_own"), _run_dir(odapi_world), mode=mode)
  )


@pytest.mark.parametrize("mode", [preflight.EVAL, preflight.EXPORT])
def test_a_copied_directory_with_its_relative_state_file_passes(odapi_world, tmp_path, mode):
  copied = _copy(_run_dir(odapi_world), tmp_path / "downloaded" / "my_ssd_mobnet")
  _passes(preflight.check_eval(odapi_world.write_config("dirs_copy"), str(copied), mode=mode))


@pytest.mark.parametrize("mode", [preflight.EVAL, preflight.EXPORT])
def test_a_relative_directory_and_an_absolute_state_path_that_exists_pass(
  odapi_world, tmp_path, monkeypatch, mode
):
  copied = _copy(_run_dir(odapi_world), tmp_path / "training")
  (copied / "checkpoint").write_text(f'model_checkpoint_path: "{copied / "ckpt-1"}"\n')
  monkeypatch.chdir(tmp_path)
  _passes(preflight.check_eval(odapi_world.write_config("dirs_rel"), "training", mode=mode))


# --- The fixes, applied ------------------------------------------------------------------


def test_10483_the_proposed_directory_evaluates(odapi_world, tmp_path):
  run = _copy(_run_dir(odapi_world), tmp_path / "workspace" / "models" / "my-ssd-mobnet")
  config = odapi_world.write_config("dirs_10483")
  report = preflight.check_eval(config, str(tmp_path / "workspace" / "models" / "my_ssd_mobnet"))
  proposed = report.finding("checkpoint_dir_missing").data["proposed"]
  assert proposed == str(run)
  _passes(preflight.check_eval(config, proposed))


def test_9209_writing_the_proposed_state_file_makes_the_export_pass(odapi_world, tmp_path):
  copied = _copy(_run_dir(odapi_world), tmp_path / "export_me", state=False)
  config = odapi_world.write_config("dirs_9209")
  report = preflight.check_eval(config, str(copied), mode=preflight.EXPORT)
  f = report.finding("checkpoint_state_unusable")
  assert report.verdict.failed and f.severity == findings.ERROR
  name = os.path.basename(f.data["proposed"])
  (copied / "checkpoint").write_text(f'model_checkpoint_path: "{name}"\n')
  _passes(preflight.check_eval(config, str(copied), mode=preflight.EXPORT))


def test_export_of_a_checkpoint_of_another_num_classes_fails_with_the_export_fix(odapi_world):
  report = preflight.check_eval(
    odapi_world.write_config("dirs_5", num_classes=5), _run_dir(odapi_world), mode=preflight.EXPORT
  )
  f = report.finding("num_classes_differ")
  assert report.verdict.failed and f.severity == findings.ERROR
  assert f.fix.startswith("Export with the config the checkpoint was trained with")
  assert "--trained_checkpoint_dir" in f.fix
  assert f.stock_outcome.startswith("exits 0 and writes a SavedModel, silently")


# --- The exporter drop-in, end to end ----------------------------------------------------


def _exporter(config: str, trained: str, out: pathlib.Path, *extra: str):
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "od_guard.exporter_main_v2",
      f"--pipeline_config_path={config}",
      f"--trained_checkpoint_dir={trained}",
      f"--output_directory={out}",
      *extra,
    ],
    capture_output=True,
    text=True,
    timeout=900,
    env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
  )


def test_9209_exporter_drop_in_stops_then_exports_after_the_fix(odapi_world, tmp_path):
  """#9209: stock (measured) exits 1 after 64 s with AssertionError: No
  checkpoint specified (save_path=None). The drop-in exits 1 before importing
  TensorFlow with the state file to write; written, it exports."""
  copied = _copy(_run_dir(odapi_world), tmp_path / "export_me", state=False)
  config = odapi_world.write_config("dirs_dropin")
  r = _exporter(config, str(copied), tmp_path / "out")
  assert r.returncode == 1, r.stderr[-3000:]
  assert "(checkpoint_state_unusable)" in r.stdout
  assert "export preflight FAILED" in r.stderr
  assert not (tmp_path / "out" / "saved_model").exists()
  (copied / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
  r = _exporter(config, str(copied), tmp_path / "out")
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.startswith("od_guard preflight: PASS")
  assert (tmp_path / "out" / "saved_model" / "saved_model.pb").is_file()
  assert (tmp_path / "out" / "od_guard" / "report.json").is_file()


def test_exporter_flags_match_the_stock_binary():
  from absl import flags

  from od_guard.odapi import exporter_main_v2

  fv = flags.FlagValues()
  exporter_main_v2.define_flags(fv)
  stock = {
    "input_type": "image_tensor",
    "pipeline_config_path": None,
    "trained_checkpoint_dir": None,
    "output_directory": None,
    "config_override": "",
    "use_side_inputs": False,
    "side_input_shapes": "",
    "side_input_types": "",
    "side_input_names": "",
  }
  assert {name: fv[name].default for name in stock} == stock


# --- --num_train_steps against the resumed step ------------------------------------------


def _resumed(odapi_world, model_dir: pathlib.Path, step: int) -> str:
  """model_dir holding a training checkpoint at `step` (model and step, as
  train_loop's CheckpointManager saves them)."""
  import tensorflow as tf

  from od_guard.testing import tiny_odapi

  model = tiny_odapi.build_model(odapi_world.config(checkpoint=""))
  counter = tf.Variable(step, dtype=tf.int64, trainable=False)
  manager = tf.train.CheckpointManager(
    tf.train.Checkpoint(step=counter, model=model), str(model_dir), max_to_keep=3
  )
  return manager.save(checkpoint_number=3)


@pytest.fixture(scope="module")
def resumed_2000(odapi_world, tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("my_ssd_mobnet")
  _resumed(odapi_world, model_dir, 2000)
  return model_dir


def test_tfodcourse_82_resumed_at_num_train_steps(odapi_world, resumed_2000):
  """nicknochnack/TFODCourse#82: training resumed in my_ssd_mobnet, whose
  checkpoint is at step 2000, with --num_train_steps=2000: stock trains 0
  steps. The check reads the flag, not the config's num_steps."""
  config = odapi_world.write_config("dirs_82", num_steps=50000)
  static = preflight.read(config, model_dir=str(resumed_2000), training=True, num_train_steps=2000)
  report = preflight.check_static(config, training=True, static=static)
  f = report.finding("model_dir_training_complete")
  assert report.verdict.failed and f.severity == findings.ERROR
  assert "--num_train_steps is 2000" in f.title and "--num_train_steps=4000" in f.fix


@pytest.mark.parametrize(
  ("num_steps", "flag"), [(50000, 3000), (2, 2001), (50000, None)], ids=["raised", "over", "config"]
)
def test_resume_with_steps_left_does_not_fail(odapi_world, resumed_2000, num_steps, flag):
  config = odapi_world.write_config(f"dirs_82_{num_steps}_{flag}", num_steps=num_steps)
  static = preflight.read(config, model_dir=str(resumed_2000), training=True, num_train_steps=flag)
  report = preflight.check_static(config, training=True, static=static)
  assert not report.finding("model_dir_training_complete")
  assert report.finding("stale_checkpoint_in_model_dir").severity == findings.WARNING


def test_drop_in_stops_before_tensorflow_when_nothing_is_left_to_train(odapi_world, resumed_2000):
  config = odapi_world.write_config("dirs_82_dropin", num_steps=50000)
  r = subprocess.run(
    [
      sys.executable,
      "-m",
      "od_guard.model_main_tf2",
      f"--pipeline_config_path={config}",
      f"--model_dir={resumed_2000}",
      "--num_train_steps=2000",
    ],
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
  )
  assert r.returncode == 1, r.stderr[-3000:]
  assert "(model_dir_training_complete)" in r.stdout
  assert "before importing TensorFlow" in r.stderr


# --- The builder's errors are findings ---------------------------------------------------


def test_build_error_follows_the_static_diagnosis(odapi_world):
  """ResNet50 FPN at 64 px cannot be built ("image size must be >= 129"); the
  MobileNet checkpoint already tells the static tier that the extractor is
  wrong: that leads the verdict, the build error follows as evidence."""
  report = preflight.check(
    odapi_world.write_config("dirs_build", zoo="ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config")
  )
  assert report.verdict.failed
  assert report.finding("feature_extractor_mismatch").severity == findings.ERROR
  built = report.finding("model_build_failed")
  assert built.severity == findings.INFO and "feature_extractor_mismatch" in built.title
  assert "129" in built.detail
  assert any("feature_extractor_mismatch" in r for r in report.verdict.reasons)
  assert not any("model_build_failed" in r for r in report.verdict.reasons)


def test_build_error_without_a_static_cause_is_an_error_finding(odapi_world):
  """SSD MobileNet V2 below its minimum input size (33 px): nothing static
  explains it; the builder's error is the finding, not an exception."""
  report = preflight.check(odapi_world.write_config("dirs_tiny", image_size=16))
  f = report.finding("model_build_failed")
  assert report.verdict.failed and f.severity == findings.ERROR and f.detail


# --- The drop-in's eval mode ---------------------------------------------------------------


def _drop_in(*args: str):
  return subprocess.run(
    [sys.executable, "-m", "od_guard.model_main_tf2", *args],
    capture_output=True,
    text=True,
    timeout=600,
    env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
  )


def test_10483_drop_in_stops_before_tensorflow_naming_the_directory(odapi_world, tmp_path):
  """#10483: stock (measured) waits at the missing directory until
  --eval_timeout and exits 0 (45 s with --eval_timeout=20)."""
  run = _copy(_run_dir(odapi_world), tmp_path / "models" / "my-ssd-mobnet")
  r = _drop_in(
    f"--pipeline_config_path={odapi_world.write_config('dirs_10483_dropin')}",
    f"--model_dir={run}",
    f"--checkpoint_dir={tmp_path / 'models' / 'my_ssd_mobnet'}",
  )
  assert r.returncode == 1, r.stderr[-3000:]
  assert "(checkpoint_dir_missing)" in r.stdout and f"--checkpoint_dir={run}" in r.stdout
  assert "before importing TensorFlow" in r.stderr
  assert (run / "od_guard" / "eval" / "report.json").is_file()


def test_8883_drop_in_warns_that_the_training_command_only_evaluates(odapi_world, tmp_path):
  """#8883: a training command with --checkpoint_dir added: stock evaluates
  only. The drop-in says so (and, as stock, waits: here --eval_timeout=1)."""
  empty = tmp_path / "training"
  empty.mkdir()
  r = _drop_in(
    f"--pipeline_config_path={odapi_world.write_config('dirs_8883_dropin')}",
    f"--model_dir={empty}",
    f"--checkpoint_dir={empty}",
    "--checkpoint_every_n=100",
    "--eval_timeout=1",
  )
  assert r.returncode == 0, r.stderr[-3000:]
  assert "(checkpoint_dir_eval_only)" in r.stdout
  assert "--checkpoint_every_n" in r.stdout and "drop --checkpoint_dir" in r.stdout
