"""`od-guard fix --write` on every scenario of tests/scenarios_test.py whose
fixes are machine-applicable: the fixed config passes `check --static`, and
every line the fixes did not touch is byte-identical."""

from __future__ import annotations

import pathlib

import pytest
from scenarios_test import MODEL
from scenarios_test import _config
from scenarios_test import _data
from scenarios_test import _zoo_ckpt
from scenarios_test import _zoo_folder

from conftest import cli_in_process

pytestmark = pytest.mark.plain

_EDITED = (
  b"fine_tune_checkpoint",
  b"num_classes",
  b"load_all_detection_checkpoint_vars",
  b"from_detection_checkpoint",
  b"type: 'ssd_mobilenet",
)


def _version_line_deleted(w):
  path = pathlib.Path(
    _config(w.root, checkpoint=_zoo_ckpt(w.folder), record=w.record, label_map=w.label_map)
  )
  path.write_text(path.read_text().replace("fine_tune_checkpoint_version: V2\n", ""))
  return str(path)


def _small_label_map(w):
  (w.root / "other").mkdir()
  _, small = _data(w.root / "other", 3)
  return _config(w.root, checkpoint=_zoo_ckpt(w.folder), record=w.record, label_map=small)


# name -> how the scenario writes its config (the world as scenarios_test builds it).
SCENARIOS = {
  "9855_relative_prefix_from_the_wrong_folder": lambda w: w.config(f"./Project/pre-trained-models/{MODEL}/checkpoint/ckpt-0"),
  "9855_checkpoint_folder_left_out": lambda w: w.config(str(w.folder / "ckpt-0")),
  "9496_tf1_model_ckpt_name": lambda w: w.config(str(w.folder / "model.ckpt")),
  "10348_windows_backslashes": lambda w: w.config(f"pre-trained-models\\\\{MODEL}\\\\checkpoint\\\\ckpt-0"),
  "10794_one_backslash": lambda w: w.config(f"pre-trained-models/{MODEL}\\checkpoint/ckpt-0"),
  "9855_bare_ckpt_0": lambda w: w.config("./ckpt-0"),
  "index_file_named": lambda w: w.config(_zoo_ckpt(w.folder) + ".index"),
  "directory_named": lambda w: w.config(str(w.folder / "checkpoint")),
  "tfodcourse_40_version_line_deleted": _version_line_deleted,
  "8875_label_map_classes_differ": _small_label_map,
  "9204_load_all_detection_checkpoint_vars": lambda w: w.config(extra="\n  load_all_detection_checkpoint_vars: true"),
  "9897_from_detection_checkpoint": lambda w: w.config(extra="\n  from_detection_checkpoint: true"),
  "9204_tf1_feature_extractor_v2": lambda w: w.config(feature_extractor="ssd_mobilenet_v2"),
  "9204_every_problem_at_once": lambda w: w.config(str(w.folder / "ckpt-0"), ctype="classification", feature_extractor="ssd_mobilenet_v2", extra="\n  load_all_detection_checkpoint_vars: true"),
  "8892_classification_type": lambda w: w.config(ctype="classification"),
}  # fmt: skip


class _World:
  def __init__(self, root: pathlib.Path):
    self.root = root
    self.record, self.label_map = _data(root)
    self.folder = _zoo_folder(root, "pre-trained-models", MODEL)

  def config(self, checkpoint: str | None = None, **kwargs) -> str:
    kwargs.setdefault("record", self.record)
    kwargs.setdefault("label_map", self.label_map)
    return _config(self.root, checkpoint=checkpoint or _zoo_ckpt(self.folder), **kwargs)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fix_makes_the_scenario_pass(name, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = SCENARIOS[name](_World(tmp_path))
  original = pathlib.Path(path).read_bytes()
  r = cli_in_process("check", "--static", "--pipeline_config_path", path)
  assert r.returncode == 1 or "[!]" in r.stdout, r.stdout  # broken (or warned) before
  r = cli_in_process("fix", "--pipeline_config_path", path, "--write")
  assert r.returncode == 0, r.stdout + r.stderr
  assert "od-guard fix: wrote" in r.stdout
  r = cli_in_process("check", "--static", "--pipeline_config_path", path)
  assert r.returncode == 0 and "(1 error" not in r.stdout, r.stdout
  fixed = pathlib.Path(path).read_bytes()
  untouched = [line for line in original.split(b"\n") if not line.strip().startswith(_EDITED)]
  assert untouched == [line for line in fixed.split(b"\n") if not line.strip().startswith(_EDITED)]
  assert pathlib.Path(path + ".bak").read_bytes() == original
