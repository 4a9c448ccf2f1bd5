"""The steps around training, rebuilt from public reports and checked without
TensorFlow: evaluation's and the export's checkpoint directory, a training
command that evaluates only, --num_train_steps against a resumed step, and a
config whose model section a notebook emptied (issue 24).

Each scenario copies a TF2 Detection Zoo config (tests/data/zoo_configs) and a
zoo model's index (tests/data/zoo_indexes) into a tree shaped as the report
describes. The cited reports are tensorflow/models issues unless another
repository is named. Stock's outcomes were measured here (TF 2.15.1, OD API
2.8.0.post1, the tiny SSD MobileNet V2 of examples/, 2 shared cores):

* exporter_main_v2, a directory copied without its state file: exit 1 after
  64 s, "AssertionError: No checkpoint specified (save_path=None); nothing is
  being restored." (#9209).
* exporter_main_v2, a state file naming /content/training/ckpt-1: exit 1
  after 16 s, "NotFoundError: ... Failed to find any matching files for
  /content/training/ckpt-1" (sglvladi/TensorFlowObjectDetectionTutorial#39).
* exporter_main_v2 on the training run's directory: exit 0 after 143 s.

The set-ups that pass through the model tier (correct evaluation and export
directories, the fix applied) are in tests/eval_dirs_test.py.
"""

from __future__ import annotations

import pathlib
import shutil

import pytest

from od_guard.odapi import model_dir as odapi_model_dir
from od_guard.odapi import preflight
from od_guard.restore import findings

from conftest import cli_in_process

DATA = pathlib.Path(__file__).resolve().parent / "data"
MODEL = "ssd_mobilenet_v2_320x320_coco17_tpu-8"
ZOO_CONFIG = DATA / "zoo_configs" / f"{MODEL}.config"
ZOO_INDEX = DATA / "zoo_indexes" / MODEL / "ckpt-0.index"
FRCNN = "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8"

pytestmark = pytest.mark.skipif(
  not ZOO_INDEX.is_file(), reason="needs tests/data/zoo_indexes (make_zoo_indexes.py)"
)


def _run_dir(path: pathlib.Path, *, steps=(1, 2, 3), state: str | None = "ckpt-3") -> pathlib.Path:
  """A training run's directory: ckpt-N indexes, a state file naming `state`."""
  path.mkdir(parents=True)
  for n in steps:
    shutil.copyfile(ZOO_INDEX, path / f"ckpt-{n}.index")
  if state is not None:
    (path / "checkpoint").write_text(f'model_checkpoint_path: "{state}"\n')
  return path


def _config(root: pathlib.Path, fine_tune: str = "PATH_TO_BE_CONFIGURED/mobilenet_v2.ckpt-1"):
  text = ZOO_CONFIG.read_text().replace(
    '"PATH_TO_BE_CONFIGURED/mobilenet_v2.ckpt-1"', f'"{fine_tune}"'
  )
  path = root / "pipeline.config"
  path.write_text(text)
  return str(path)


def _codes(report, severity=findings.ERROR) -> set[str]:
  return {f.code for f in report.findings if f.severity == severity}


# --- Evaluation's --checkpoint_dir ------------------------------------------------------


@pytest.mark.parametrize("typed", ["my_ssd_mobnet", "My-SSD-Mobnet", "my-ssd_mobnet"])
def test_10483_eval_checkpoint_dir_that_does_not_exist(tmp_path, monkeypatch, typed):
  """#10483: `--model_dir=workspace/models/my-ssd-mobnet ... --checkpoint_dir=
  workspace/models/my_ssd_mobnet`: stock logs "Waiting for new checkpoint at
  workspace/models/my_ssd_mobnet" until --eval_timeout. The directory differs
  by '-' / '_' / case from the one that holds the checkpoints."""
  monkeypatch.chdir(tmp_path)
  run = _run_dir(tmp_path / "workspace" / "models" / "my-ssd-mobnet")
  report = preflight.check_eval(_config(tmp_path), f"workspace/models/{typed}")
  assert report.verdict.failed and _codes(report) == {"checkpoint_dir_missing"}
  f = report.finding("checkpoint_dir_missing")
  assert f.data["proposed"] == str(run)
  assert f"--checkpoint_dir={run}" in f.fix
  assert "Waiting for new checkpoint" in f.stock_outcome


def test_10483_missing_dir_with_nothing_near_names_no_directory(tmp_path):
  (tmp_path / "models" / "other").mkdir(parents=True)  # no checkpoints in it
  report = preflight.check_eval(_config(tmp_path), str(tmp_path / "models" / "my_ssd_mobnet"))
  f = report.finding("checkpoint_dir_missing")
  assert f.severity == findings.ERROR and f.data["proposed"] is None


def test_10483_nearest_directory_keeps_the_rest_of_the_path(tmp_path):
  """A typo in a parent folder: the rest of the typed path is kept."""
  run = _run_dir(tmp_path / "Tensorflow" / "workspace" / "models" / "my_ssd_mobnet")
  typed = tmp_path / "Tensorflow" / "work-space" / "models" / "my_ssd_mobnet"
  assert odapi_model_dir.nearest_checkpoint_dir(str(typed)) == str(run)


def test_tfodcourse_9_eval_before_any_checkpoint_waits_without_failing(tmp_path):
  """nicknochnack/TFODCourse#9: evaluation started in the training run's
  directory before training saved: it waits (info, no failure)."""
  run = tmp_path / "my_ssd_mobnet"
  run.mkdir()
  report = preflight.check_eval(_config(tmp_path), str(run))
  assert not report.verdict.failed
  assert report.finding("eval_checkpoint_pending").severity == findings.INFO


def test_eval_of_checkpoints_without_a_state_file_warns_that_it_waits(tmp_path):
  run = _run_dir(tmp_path / "train", state=None)
  report = preflight.check_eval(_config(tmp_path), str(run))
  f = report.finding("checkpoint_state_unusable")
  assert f.severity == findings.WARNING and f.data["proposed"] == str(run / "ckpt-3")
  assert not report.verdict.failed


# --- A training command that carries --checkpoint_dir ------------------------------------


def test_8883_training_flags_with_checkpoint_dir_warn_eval_only(tmp_path):
  """#8883: the training command with --checkpoint_dir added: stock evaluates
  only ("Waiting for new checkpoint", then "Timed-out waiting for a
  checkpoint"); the maintainers' answer: drop --checkpoint_dir."""
  run = tmp_path / "training"
  run.mkdir()
  report = preflight.check_eval(
    _config(tmp_path), str(run), training_flags=("checkpoint_every_n", "num_workers")
  )
  f = report.finding("checkpoint_dir_eval_only")
  assert f.severity == findings.WARNING
  assert "--checkpoint_every_n" in f.detail and "drop --checkpoint_dir" in f.fix
  assert not report.verdict.failed


def test_8883_checkpoint_dir_is_the_pretrained_models_directory(tmp_path):
  """--checkpoint_dir pointed at the pre-trained model's checkpoint folder (the
  fine-tune checkpoint's directory), as if it set the starting point."""
  zoo = tmp_path / "pre-trained-models" / MODEL / "checkpoint"
  zoo.mkdir(parents=True)
  shutil.copyfile(ZOO_INDEX, zoo / "ckpt-0.index")
  # no state file: the model tier is not reached, the warning is the subject
  report = preflight.check_eval(_config(tmp_path, str(zoo / "ckpt-0")), str(zoo))
  f = report.finding("checkpoint_dir_eval_only")
  assert f.severity == findings.WARNING and str(zoo) in f.detail


def test_eval_command_without_training_flags_does_not_warn(tmp_path):
  """The tutorials' evaluation command (--model_dir, --pipeline_config_path,
  --checkpoint_dir: the same directory twice) carries no training flag."""
  run = tmp_path / "my_ssd_mobnet"
  run.mkdir()
  report = preflight.check_eval(_config(tmp_path), str(run))
  assert not report.finding("checkpoint_dir_eval_only")


# --- The export's --trained_checkpoint_dir ------------------------------------------------


def test_9209_export_dir_copied_without_its_state_file(tmp_path):
  """#9209 (alvinyeapcj's comment): the ckpt files copied to another folder
  without the 'checkpoint' file. Stock (measured): AssertionError: No
  checkpoint specified (save_path=None), exit 1 after 64 s."""
  run = _run_dir(tmp_path / "export_me", state=None)
  report = preflight.check_eval(_config(tmp_path), str(run), mode=preflight.EXPORT)
  assert report.verdict.failed and _codes(report) == {"checkpoint_state_unusable"}
  f = report.finding("checkpoint_state_unusable")
  assert f.data["proposed"] == str(run / "ckpt-3")
  assert 'model_checkpoint_path: "ckpt-3"' in f.fix
  assert "No checkpoint specified" in f.stock_outcome


def test_sglvladi_39_state_file_names_a_path_on_another_machine(tmp_path):
  """sglvladi/TensorFlowObjectDetectionTutorial#39 and #9209: the directory
  downloaded from Colab; its state file names /content/training/ckpt-3.
  Stock (measured with /content/training/ckpt-1): NotFoundError ... Failed to
  find any matching files for /content/training/ckpt-1, exit 1 after 16 s."""
  run = _run_dir(tmp_path / "training", state="/content/training/ckpt-3")
  report = preflight.check_eval(_config(tmp_path), str(run), mode=preflight.EXPORT)
  f = report.finding("checkpoint_state_unusable")
  assert f.severity == findings.ERROR and "/content/training/ckpt-3" in f.detail
  assert f.data["named"] == "/content/training/ckpt-3"


def test_9209_export_from_the_zoo_folder_proposes_its_checkpoint_subfolder(tmp_path):
  folder = tmp_path / "pre-trained-models" / MODEL
  _run_dir(folder / "checkpoint", steps=(0,), state="ckpt-0")
  report = preflight.check_eval(_config(tmp_path), str(folder), mode=preflight.EXPORT)
  f = report.finding("checkpoint_dir_empty")
  assert f.severity == findings.ERROR and f.data["proposed"] == str(folder / "checkpoint")


def test_9209_export_dir_that_does_not_exist(tmp_path):
  run = _run_dir(tmp_path / "models" / "my_ssd_mobnet")
  report = preflight.check_eval(
    _config(tmp_path), str(tmp_path / "models" / "my-ssd-mobnet"), mode=preflight.EXPORT
  )
  f = report.finding("checkpoint_dir_missing")
  assert f.data["proposed"] == str(run) and "--trained_checkpoint_dir" in f.fix


def test_state_resolution_matches_tf_latest_checkpoint_semantics(tmp_path):
  run = _run_dir(tmp_path / "r", steps=(2, 10, 9), state="ckpt-9")
  st = odapi_model_dir.state(str(run))
  assert st.prefix == str(run / "ckpt-9") and st.named == "ckpt-9"
  assert st.on_disk[-1] == str(run / "ckpt-10")  # by step, not by name


# --- A notebook that writes model.ssd.num_classes on a Faster R-CNN config ---------------


def _frcnn_as_ssd(root: pathlib.Path) -> str:
  """tensorflow/models#10156: the TFODCourse notebook's
  `pipeline_config.model.ssd.num_classes = 2` on a Faster R-CNN config, then
  `text_format.MessageToString`: the oneof switched to an `ssd` section
  holding only num_classes, and the faster_rcnn section is gone (the text
  below is what protobuf writes; the rest of the config is the zoo's)."""
  zoo = root / "pre-trained-models" / FRCNN / "checkpoint"
  zoo.mkdir(parents=True)
  shutil.copyfile(DATA / "zoo_indexes" / FRCNN / "ckpt-0.index", zoo / "ckpt-0.index")
  text = (DATA / "zoo_configs" / f"{FRCNN}.config").read_text()
  start = text.index("model {")
  end = text.index("\ntrain_config")
  text = text[:start] + "model {\n  ssd {\n    num_classes: 2\n  }\n}" + text[end:]
  text = text.replace('"PATH_TO_BE_CONFIGURED/resnet50.ckpt-1"', f'"{zoo / "ckpt-0"}"')
  text = text.replace(
    'fine_tune_checkpoint_type: "classification"', 'fine_tune_checkpoint_type: "detection"'
  )
  path = root / "pipeline.config"
  path.write_text(text)
  return str(path)


def test_10156_num_classes_written_on_the_wrong_meta_architecture(tmp_path):
  """Stock: ValueError: Unknown ssd feature_extractor: (model_builder), before
  step one; the full tier used to end in a generic ModelBuildError (exit 2)."""
  path = _frcnn_as_ssd(tmp_path)
  static = preflight.check_static(path)
  assert static.verdict.failed
  assert {"model_section_incomplete", "meta_architecture_mismatch"} <= _codes(static)
  f = static.finding("model_section_incomplete")
  assert "holds only num_classes" in f.title
  assert "model.faster_rcnn.num_classes" in f.fix
  # The full tier keeps it: the model is not built, nothing is raised.
  full = preflight.check(path)
  assert full.verdict.failed and "model_section_incomplete" in _codes(full)
  assert not full.finding("model_build_failed")


@pytest.mark.parametrize("zoo", [MODEL, FRCNN, "center_net_resnet101_v1_fpn_512x512_coco17_tpu-8"])
def test_zoo_configs_have_a_complete_model_section(zoo, tmp_path):
  from od_guard.odapi import config as pipeline_config
  from od_guard.odapi import static_diagnosis

  message, _ = pipeline_config.parse_with_text(str(DATA / "zoo_configs" / f"{zoo}.config"))
  assert static_diagnosis.diagnose_model_section(message) == []


# --- --num_train_steps against the resumed step ------------------------------------------


def test_model_dir_step_counts_num_train_steps_over_num_steps(tmp_path, monkeypatch):
  """The words follow the flag: --num_train_steps overrides num_steps."""
  f = odapi_model_dir._nothing_to_train("p", 2000, 2000, training=True, flag=True)
  assert "--num_train_steps is 2000" in f.title and "--num_train_steps=4000" in f.fix
  g = odapi_model_dir._nothing_to_train("p", 2000, 2000, training=True)
  assert "num_steps is 2000" in g.title and "num_steps: 4000" in g.fix


# --- od-guard check --export --------------------------------------------------------------


def test_check_export_names_the_state_file_to_write(tmp_path):
  """`od-guard check --export DIR`: the export's preflight from the CLI."""
  run = _run_dir(tmp_path / "training", state="/content/training/ckpt-3")
  r = cli_in_process(
    "check", f"--pipeline_config_path={_config(tmp_path)}", f"--export={run}", "--static"
  )
  assert r.returncode == 1, r.stderr
  assert "(checkpoint_state_unusable)" in r.stdout
  assert 'model_checkpoint_path: "ckpt-3"' in r.stdout
  assert "stock exporter_main_v2:" in r.stdout
  (run / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')  # the fix
  r = cli_in_process(
    "check", f"--pipeline_config_path={_config(tmp_path)}", f"--export={run}", "--static"
  )
  assert r.returncode == 0, r.stdout


# --- Under --use_tpu, every path the TPU reads is gs:// ----------------------------------


def _tpu_world(root: pathlib.Path, *, bucket: bool) -> tuple[str, str]:
  """A config (and model_dir) with local paths, or gs:// ones with `bucket`."""
  base = "gs://my-bucket/od" if bucket else str(root)
  text = ZOO_CONFIG.read_text()
  text = text.replace('"PATH_TO_BE_CONFIGURED/mobilenet_v2.ckpt-1"', f'"{base}/ckpt/ckpt-0"')
  text = text.replace(
    '"PATH_TO_BE_CONFIGURED/train2017-?????-of-00256.tfrecord"', f'"{base}/train.record"'
  )
  text = text.replace(
    '"PATH_TO_BE_CONFIGURED/val2017-?????-of-00032.tfrecord"', f'"{base}/val.record"'
  )
  path = root / ("gcs.config" if bucket else "local.config")
  path.write_text(text)
  return str(path), f"{base}/train"


def _tpu(config_path: str, model_dir: str, tpu_name: str | None = "my-tpu"):
  from od_guard.odapi import config as pipeline_config
  from od_guard.odapi import input_paths

  config = pipeline_config.read(config_path, pipeline_config.parse_with_text(config_path)[0])
  return input_paths.diagnose_tpu(config, model_dir, tpu_name=tpu_name)


def test_8947_local_paths_under_use_tpu(tmp_path):
  """#8947: training on a Cloud TPU with the checkpoint, the records and
  model_dir on local disk; TF1 said "File system scheme '[local]' not
  implemented". Every local path is named, with gs:// as the fix."""
  config, model_dir = _tpu_world(tmp_path, bucket=False)
  static = preflight.read(config, model_dir=model_dir, training=True, use_tpu=True, tpu_name="t")
  (f,) = [f for f in static.found if f.code == "tpu_local_path"]
  assert f.severity == findings.ERROR and len(f.data["paths"]) == 4
  assert f"--model_dir: {model_dir}" in f.detail and "gs://" in f.fix


def test_8947_the_fix_gs_paths_pass(tmp_path):
  config, model_dir = _tpu_world(tmp_path, bucket=True)
  assert _tpu(config, model_dir) == []


@pytest.mark.parametrize("case", ["tpu_vm", "no_tpu", "placeholders"])
def test_tpu_paths_no_false_alarm(tmp_path, case):
  config, model_dir = _tpu_world(tmp_path, bucket=False)
  if case == "tpu_vm":  # a TPU VM reads its own disk
    assert _tpu(config, model_dir, tpu_name="local") == []
  elif case == "no_tpu":
    static = preflight.read(config, model_dir=model_dir, training=True)
    assert not [f for f in static.found if f.code == "tpu_local_path"]
  else:  # the zoo config as published: placeholders are their own finding
    assert _tpu(str(ZOO_CONFIG), "gs://b/train") == []
