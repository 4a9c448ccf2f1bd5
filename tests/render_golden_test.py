"""The terminal and Markdown reports, compared byte for byte with golden files.

Each case is a static preflight of a fine-tune set-up from tests/scenarios_test.py
(zoo config and zoo-layout checkpoint copied into a temporary tree). Paths
under the tree and the timings are normalised; everything else must match
tests/golden/<case>.{txt,verbose.txt,md}. After an intended change of wording,
regenerate them with `OD_GUARD_UPDATE_GOLDEN=1 make test-odapi` (or this file
alone) and review the diff.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest
import scenarios_test as scenarios

from od_guard.odapi import config_schema
from od_guard.report import render

world = scenarios.world  # the fixture: a zoo-style tree with a record and a label map
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("OD_GUARD_UPDATE_GOLDEN") == "1"

pytestmark = [
  pytest.mark.skipif(not scenarios.ZOO_INDEX.is_file(), reason="needs tests/data/zoo_indexes"),
  pytest.mark.skipif(
    config_schema.load().route == config_schema.NONE,
    reason="without the OD API's schema the report says that misspelt fields were not "
    "checked: the golden files are those of a schema-checked config",
  ),
]

CASES = {
  "correct_setup": {},
  "classification_type_on_detection": {"ctype": "classification"},
  "tf1_model_ckpt_name": {"checkpoint": "model.ckpt"},
  "checkpoint_folder_left_out": {"checkpoint": "ckpt-0"},
  "label_map_classes_differ": {"classes": 3},
  "tf1_feature_extractor": {"feature_extractor": "ssd_mobilenet_v2"},
  "tf1_config_field": {"extra": "\n  from_detection_checkpoint: true"},
  "version_line_deleted": {"version": False},
}


def _report(world: scenarios.World, case: dict):
  kwargs = dict(case)
  checkpoint = kwargs.pop("checkpoint", None)
  if checkpoint is not None:
    checkpoint = str(world.folder / checkpoint)
  if kwargs.pop("classes", None):
    (world.root / "small").mkdir()
    kwargs["label_map"] = scenarios._data(world.root / "small", classes=3)[1]
  version = kwargs.pop("version", True)
  report = scenarios._check_world(world, checkpoint, **kwargs)
  if not version:
    text = pathlib.Path(world.root / "pipeline.config").read_text()
    pathlib.Path(world.root / "pipeline.config").write_text(
      text.replace("fine_tune_checkpoint_version: V2", "")
    )
    report = scenarios.preflight.check_static(str(world.root / "pipeline.config"))
  return report


def _normalise(text: str, root: pathlib.Path) -> str:
  text = text.replace(str(root), "<TREE>")
  return re.sub(r"(timings:\s+).*", r"\1<timings>", text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_renderings_match_their_golden_files(name, world):
  report = _report(world, CASES[name])
  outputs = {
    ".txt": render.render_text(report),
    ".verbose.txt": render.render_text(report, verbose=True),
    ".md": render.render_markdown(report),
  }
  for suffix, text in outputs.items():
    text = _normalise(text, world.root) + "\n"
    path = GOLDEN / f"{name}{suffix}"
    if UPDATE:
      path.write_text(text)
    assert path.is_file(), f"{path} is missing: run with OD_GUARD_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs from the rendering"
