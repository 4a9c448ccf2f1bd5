"""Fine-tune set-ups rebuilt from public OD API bug reports, checked statically.

Each scenario copies a TF2 Detection Zoo config (tests/data/zoo_configs) and a
zoo-layout checkpoint (the index of the OD API-built model, tests/data/zoo_indexes,
with a data shard-less ckpt-0) into a temporary tree shaped as the report
describes, and asserts the verdict and the finding code (and, where a path was
not found, the exact path proposed). The cited reports are tensorflow/models
issues unless another repository is named.
"""

from __future__ import annotations

import pathlib
import re
import shutil
from typing import NamedTuple

import pytest

from od_guard.odapi import preflight
from od_guard.restore import findings

DATA = pathlib.Path(__file__).resolve().parent / "data"
ZOO_CONFIG = DATA / "zoo_configs" / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config"
ZOO_INDEX = DATA / "zoo_indexes" / "ssd_mobilenet_v2_320x320_coco17_tpu-8" / "ckpt-0.index"
MODEL = "ssd_mobilenet_v2_320x320_coco17_tpu-8"

pytestmark = pytest.mark.skipif(
  not ZOO_INDEX.is_file(), reason="needs tests/data/zoo_indexes (make_zoo_indexes.py)"
)


def _zoo_folder(root: pathlib.Path, *parts: str) -> pathlib.Path:
  """An unpacked zoo tarball: <parts>/checkpoint/{ckpt-0.index, checkpoint}."""
  folder = root.joinpath(*parts)
  (folder / "checkpoint").mkdir(parents=True)
  shutil.copyfile(ZOO_INDEX, folder / "checkpoint" / "ckpt-0.index")
  (folder / "checkpoint" / "checkpoint").write_text('model_checkpoint_path: "ckpt-0"\n')
  return folder


def _data(root: pathlib.Path, classes: int = 90) -> tuple[str, str]:
  (root / "data").mkdir(exist_ok=True)
  record = root / "data" / "train.record"
  record.write_bytes(b"")
  label_map = root / "data" / "label_map.pbtxt"
  label_map.write_text("".join(f'item {{ id: {i} name: "c{i}" }}\n' for i in range(1, classes + 1)))
  return str(record), str(label_map)


def _config(
  root: pathlib.Path,
  *,
  checkpoint: str,
  record: str = "",
  label_map: str = "",
  ctype: str = "detection",
  extra: str = "",
  num_steps: int | None = None,
  feature_extractor: str | None = None,
  classes: int | None = None,
) -> str:
  text = ZOO_CONFIG.read_text()
  text = text.replace('"PATH_TO_BE_CONFIGURED/mobilenet_v2.ckpt-1"', f'"{checkpoint}"')
  text = text.replace(
    'fine_tune_checkpoint_type: "classification"', f'fine_tune_checkpoint_type: "{ctype}"' + extra
  )
  if label_map:
    text = text.replace('"PATH_TO_BE_CONFIGURED/label_map.txt"', f'"{label_map}"')
  if record:
    text = re.sub(r'"PATH_TO_BE_CONFIGURED/\w+2017-\?+-of-\d+\.tfrecord"', f'"{record}"', text)
  if num_steps is not None:
    text = text.replace("num_steps: 50000", f"num_steps: {num_steps}")
  if feature_extractor:
    text = text.replace("type: 'ssd_mobilenet_v2_keras'", f"type: '{feature_extractor}'")
  if classes:
    text = text.replace("num_classes: 90", f"num_classes: {classes}")
  path = root / "pipeline.config"
  path.write_text(text)
  return str(path)


def _codes(report, severity=findings.ERROR) -> set[str]:
  return {f.code for f in report.findings if f.severity == severity}


class World(NamedTuple):
  """A zoo-style tree: the zoo folder under pre-trained-models/, a record and a label map."""

  root: pathlib.Path
  record: str
  label_map: str
  folder: pathlib.Path


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
  monkeypatch.chdir(tmp_path)
  record, label_map = _data(tmp_path)
  folder = _zoo_folder(tmp_path, "pre-trained-models", MODEL)
  return World(tmp_path, record, label_map, folder)


def _check(root, **kwargs):
  model_dir = kwargs.pop("model_dir", None)
  return preflight.check_static(_config(root, **kwargs), model_dir=model_dir)


def _zoo_ckpt(folder: pathlib.Path) -> str:
  """The prefix an unpacked zoo folder's checkpoint has: <folder>/checkpoint/ckpt-0."""
  return str(folder / "checkpoint" / "ckpt-0")


def _check_world(world: World, checkpoint: str | None = None, **kwargs):
  """`_check` in the world's tree: the zoo checkpoint unless `checkpoint` is given,
  the world's record and label map unless given in kwargs."""
  kwargs.setdefault("record", world.record)
  kwargs.setdefault("label_map", world.label_map)
  return _check(world.root, checkpoint=checkpoint or _zoo_ckpt(world.folder), **kwargs)


def _expect(report, code: str, *, proposed: str | None = None) -> findings.Finding:
  """Asserts that `report` fails with a finding `code` (proposing the path `proposed`,
  where given); returns the finding."""
  f = report.finding(code)
  assert report.verdict.failed and f is not None, report.findings
  if proposed is not None:
    assert f.data["proposed"] == proposed
  return f


def _check_without_version_line(world: World):
  """The world's config with its fine_tune_checkpoint_version line deleted."""
  path = _config(
    world.root, checkpoint=_zoo_ckpt(world.folder), record=world.record, label_map=world.label_map
  )
  text = pathlib.Path(path).read_text().replace("fine_tune_checkpoint_version: V2\n", "")
  pathlib.Path(path).write_text(text)
  return preflight.check_static(path)


# --- The path that exists, found --------------------------------------------------------


def test_9855_relative_prefix_from_the_wrong_folder(world):
  """#9855: './Custom-Object-Detector/Project/pre-trained-models/.../ckpt-0' from another cwd."""
  report = _check_world(world, "./Project/pre-trained-models/" + MODEL + "/checkpoint/ckpt-0")
  _expect(report, "checkpoint_not_found", proposed=_zoo_ckpt(world.folder))


def test_9855_checkpoint_folder_left_out(world):
  """#9855 (and #8892's tree): '<model>/ckpt-0' without 'checkpoint/'."""
  report = _check_world(world, str(world.folder / "ckpt-0"))
  _expect(report, "checkpoint_subdir_missing", proposed=_zoo_ckpt(world.folder))


def test_9496_tf1_model_ckpt_name_in_a_tf2_tarball(world):
  """#9496: a TF2 zoo model given as <model>/model.ckpt (the TF1 tarball's name)."""
  report = _check_world(world, str(world.folder / "model.ckpt"))
  _expect(report, "tf1_checkpoint_name", proposed=_zoo_ckpt(world.folder))


def test_10348_windows_backslashes_on_linux(world):
  """#10348 (a Windows user's paths): backslash separators are one file name on Linux."""
  report = _check_world(world, "pre-trained-models\\\\" + MODEL + "\\\\checkpoint\\\\ckpt-0")
  _expect(report, "windows_path_separator", proposed=_zoo_ckpt(world.folder))


def test_8892_doubled_model_folder(world):
  """#8892: the archive extracted into a folder of its own name (model/model/checkpoint)."""
  doubled = _zoo_folder(world.root, "models", MODEL, MODEL)
  report = _check_world(world, str(world.root / "models" / MODEL / "checkpoint" / "ckpt-0"))
  _expect(report, "checkpoint_not_found", proposed=_zoo_ckpt(doubled))


def test_9855_nothing_near_proposes_no_path(tmp_path, monkeypatch):
  """#9855: nothing to find: the fix says what to point at, no guessed path."""
  monkeypatch.chdir(tmp_path)
  record, label_map = _data(tmp_path)
  report = _check(
    tmp_path, checkpoint=str(tmp_path / "nowhere" / "ckpt-77"), record=record, label_map=label_map
  )
  assert "proposed" not in _expect(report, "checkpoint_not_found").data


def test_9855_bare_ckpt_0_from_the_title(world):
  """#9855's title: 'Failed to find any matching files for ./ckpt-0'."""
  report = _check_world(world, "./ckpt-0")
  _expect(report, "checkpoint_not_found", proposed=_zoo_ckpt(world.folder))


def test_10794_one_backslash_in_a_relative_path(world):
  """#10794: 'efficientdet_d0_coco17_tpu-32\\checkpoint/ckpt-0' (a Windows separator left in)."""
  report = _check_world(world, "pre-trained-models/" + MODEL + "\\checkpoint/ckpt-0")
  _expect(report, "windows_path_separator", proposed=_zoo_ckpt(world.folder))


def test_realtimeobjectdetection_24_tar_named_folder(world):
  """nicknochnack/RealTimeObjectDetection#24: '<model>.tar/<model>/<model>/checkpoint/ckpt-0'."""
  given = world.root / "pre-trained-models" / (MODEL + ".tar") / MODEL / MODEL
  report = _check_world(world, _zoo_ckpt(given))
  _expect(report, "checkpoint_not_found", proposed=_zoo_ckpt(world.folder))


def test_tfodcourse_40_version_line_deleted(world):
  """nicknochnack/TFODCourse#40: fine_tune_checkpoint_version deleted (older protos
  rejected it), then 'Checkpoint version should be V2'."""
  report = _check_without_version_line(world)
  assert report.verdict.failed and _codes(report) == {"checkpoint_version_v1"}


# --- The config beyond the checkpoint ---------------------------------------------------


def test_9855_train_input_placeholder(world):
  """#9855's set-up, input paths left as the zoo ships them."""
  report = _check(world.root, checkpoint=_zoo_ckpt(world.folder))
  assert report.verdict.failed
  assert "input_path_placeholder" in _codes(report)
  assert "input_path_placeholder" in _codes(report, findings.WARNING)  # the eval reader


def test_10348_missing_tfrecord_is_an_error(world):
  report = _check_world(world, record=str(world.root / "data" / "missing.record"))
  assert report.verdict.failed and "input_path_missing" in _codes(report)


def test_10348_glob_matching_nothing(world):
  report = _check_world(world, record=str(world.root / "data" / "train-?????-of-00010.tfrecord"))
  assert "matches no file" in _expect(report, "input_path_missing").detail


def test_10348_label_map_that_does_not_parse(world):
  bad = world.root / "data" / "bad.pbtxt"
  bad.write_text("item { id: 1 name: 'a' \n")
  report = _check_world(world, label_map=str(bad))
  assert report.verdict.failed and "label_map_invalid" in _codes(report)


def test_8875_label_map_classes_differ_from_num_classes(world):
  """#8875: fine-tuning the 90-class zoo model for a few classes, num_classes forgotten."""
  root = world.root
  _, small = _data(root / "other", 3) if (root / "other").mkdir() is None else (None, None)
  report = _check_world(world, label_map=small)
  f = report.finding("label_map_num_classes_differ")
  assert f.severity == findings.WARNING and f.data["label_map_classes"] == 3


def test_9204_load_all_detection_checkpoint_vars(world):
  """#9204 / #9897: 'train_pb2.load_all_detection_checkpoint_vars unsupported in TF2'."""
  report = _check_world(world, extra="\n  load_all_detection_checkpoint_vars: true")
  f = _expect(report, "tf1_config_field")
  assert f.severity == findings.ERROR
  assert "unsupported in TF2" in f.stock_outcome


def test_9897_from_detection_checkpoint_named(world):
  report = _check_world(world, extra="\n  from_detection_checkpoint: true")
  f = report.finding("tf1_config_field")
  assert f.severity == findings.WARNING and "fine_tune_checkpoint_type" in f.fix


@pytest.mark.parametrize(
  "tf1,tf2",
  [("ssd_mobilenet_v2", "ssd_mobilenet_v2_keras"), ("ssd_mobilenet_v1", "ssd_mobilenet_v1_keras")],
)
def test_9204_tf1_feature_extractor_names(world, tf1, tf2):
  """TF1 configs carried over (#9204's users came from TF1): TF1 feature extractor names."""
  report = _check_world(world, feature_extractor=tf1)
  assert _expect(report, "tf1_feature_extractor").data["tf2_type"] == tf2


def test_9204_every_independent_problem_at_once(world):
  """A TF1 config against a placeholder input and load_all: all named in one run."""
  report = _check(
    world.root,
    checkpoint=_zoo_ckpt(world.folder),
    feature_extractor="ssd_mobilenet_v2",
    extra="\n  load_all_detection_checkpoint_vars: true",
  )
  assert {"tf1_feature_extractor", "tf1_config_field", "input_path_placeholder"} <= _codes(report)


def test_44843_version_v1_still_reported_with_inputs(world):
  """tensorflow/tensorflow#44843: 'Checkpoint version should be V2'."""
  report = _check_without_version_line(world)
  assert report.verdict.failed and "checkpoint_version_v1" in _codes(report)


def test_8892_correct_setup_passes(world):
  """#8892's fix: type "detection", the zoo's checkpoint/ckpt-0: no error (data shard absent)."""
  report = _check_world(world)
  assert not _codes(report), report.findings


def test_8892_classification_type_on_detection_checkpoint(world):
  """#8892: the zoo config's "classification" with its detection ckpt-0."""
  report = _check_world(world, ctype="classification")
  assert report.verdict.failed and "checkpoint_type_mismatch" in _codes(report)


# --- model_dir as training sees it ------------------------------------------------------


def _train_dir(root: pathlib.Path, *, state: bool) -> pathlib.Path:
  """root/train holding the zoo model's index as ckpt-3, named by a state file if `state`."""
  model_dir = root / "train"
  model_dir.mkdir()
  shutil.copyfile(ZOO_INDEX, model_dir / "ckpt-3.index")
  if state:
    (model_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
  return model_dir


def test_8892_model_dir_is_the_unpacked_zoo_folder(world):
  """--model_dir = the zoo folder: its 'checkpoint/' directory ('Is a directory' at save)."""
  ckpt = world.root / "elsewhere"
  shutil.copytree(world.folder / "checkpoint", ckpt)
  report = _check_world(world, str(ckpt / "ckpt-0"), model_dir=str(world.folder))
  assert report.verdict.failed and "checkpoint_state_is_directory" in _codes(report)


def test_sglvladi_61_model_dir_checkpoint_for_another_model(world):
  """sglvladi/TensorFlowObjectDetectionTutorial#61: restarting in a model_dir that holds
  another model's checkpoint (here the 90-class zoo model into a 1-class model)."""
  root = world.root
  _, one = _data(root / "one", 1) if (root / "one").mkdir() is None else (None, None)
  model_dir = _train_dir(root, state=True)
  report = _check_world(world, label_map=one, classes=1, model_dir=str(model_dir))
  assert report.verdict.failed and "model_dir_checkpoint_mismatch" in _codes(report)


def test_sglvladi_61_no_state_file_nothing_resumes(world):
  report = _check_world(world, model_dir=str(_train_dir(world.root, state=False)))
  assert "model_dir_checkpoints_not_resumed" in _codes(report, findings.INFO)
  assert not report.finding("stale_checkpoint_in_model_dir")


def test_sglvladi_61_resume_of_the_same_model_warns(world):
  report = _check_world(world, model_dir=str(_train_dir(world.root, state=True)))
  assert report.finding("stale_checkpoint_in_model_dir").severity == findings.WARNING
  assert not report.verdict.failed


# --- Checkpoints that are not what TF2 fine-tuning loads ----------------------------------


def _tf1_copy(tf1_checkpoint: str, folder: pathlib.Path) -> str:
  """The TF1 name-based checkpoint's files under `folder`, as model.ckpt."""
  folder.mkdir(parents=True)
  for src in pathlib.Path(tf1_checkpoint).parent.glob(pathlib.Path(tf1_checkpoint).name + ".*"):
    shutil.copyfile(
      src, folder / ("model.ckpt" + src.name[len(pathlib.Path(tf1_checkpoint).name) :])
    )
  return str(folder / "model.ckpt")


def test_9278_checkpoint_not_object_based(world, tf1_checkpoint):
  """#9278: 'OSError: Checkpoint is expected to be an object-based checkpoint.' from
  load_fine_tune_checkpoint (model_lib_v2.py), fine_tune_checkpoint naming a
  name-based (TF1 Saver) checkpoint."""
  report = _check_world(world, tf1_checkpoint)
  assert report.verdict.failed and _codes(report) == {"tf1_checkpoint"}


def test_sglvladi_120_tf1_zoo_model_ckpt(world, tf1_checkpoint):
  """sglvladi/TensorFlowObjectDetectionTutorial#120: the same OSError, from a TF1
  model.ckpt unpacked under pre-trained-models/ (the TF1 zoo's layout)."""
  given = _tf1_copy(tf1_checkpoint, world.root / "pre-trained-models" / "tf1_model")
  f = _expect(_check_world(world, given), "tf1_checkpoint")
  assert f.severity == findings.ERROR
  assert "object-based" in f.stock_outcome


def test_tfodcourse_9_model_dir_of_two_runs(world):
  """nicknochnack/TFODCourse#9: a model_dir holding ckpt-1..3 of one model and
  ckpt-4..5 of another (26 KB and 48 KB indexes in the report's listing); the
  state file names ckpt-5, which training resumes: here an FPNLite checkpoint
  under the SSD MobileNet V2 config."""
  model_dir = world.root / "Tensorflow" / "workspace" / "models" / "my_ssd_mobnet"
  model_dir.mkdir(parents=True)
  other = DATA / "zoo_indexes" / "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8" / "ckpt-0.index"
  for n in (1, 2, 3):
    shutil.copyfile(ZOO_INDEX, model_dir / f"ckpt-{n}.index")
  for n in (4, 5):
    shutil.copyfile(other, model_dir / f"ckpt-{n}.index")
  (model_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
  f = _expect(_check_world(world, model_dir=str(model_dir)), "model_dir_checkpoint_mismatch")
  assert f.severity == findings.ERROR
  assert str(model_dir / "ckpt-5") in f.title + f.detail


# --- The model tier overrules a static guess ----------------------------------------------


@pytest.mark.odapi
def test_model_tier_overrules_a_wrong_depth_multiplier_guess(odapi_world):
  """MobileNet V2 at depth_multiplier 0.35: the stem rounds up to 16 channels, so
  the fingerprint reads 0.5 and the static tier fails (depth_multiplier_mismatch).
  The built model binds every requested variable with no shape mismatch: the
  verdict passes and the guess stays, as info."""
  from od_guard.testing import tiny_odapi

  config = odapi_world.config(checkpoint="")
  config.model.ssd.feature_extractor.depth_multiplier = 0.35
  prefix = tiny_odapi.save_detection_checkpoint(
    tiny_odapi.build_model(config), str(odapi_world.root / "ckpt_dm035")
  )
  config.train_config.fine_tune_checkpoint = prefix
  path = tiny_odapi.write_pipeline_config(config, str(odapi_world.root / "dm035.config"))
  static = preflight.check_static(path)
  assert static.verdict.failed and _codes(static) == {"depth_multiplier_mismatch"}
  report = preflight.check(path)
  assert not report.verdict.failed, report.verdict.reasons
  assert not report.restore.missing and not report.restore.shape_mismatches
  guess = report.finding("depth_multiplier_mismatch")
  assert guess.severity == findings.INFO and "overruled" in guess.title
