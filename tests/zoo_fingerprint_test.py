"""The fingerprint on every TF2 Detection Zoo architecture, from the index of a
checkpoint the OD API itself saved for each zoo config (tests/data/make_zoo_indexes.py
builds them; tests/data/zoo_indexes keeps the `.index` files, names and shapes only).
"""

from __future__ import annotations

import json
import pathlib

import pytest

from od_guard.checkpoint import inventory
from od_guard.restore import fingerprint

pytestmark = pytest.mark.plain

ZOO_INDEXES = pathlib.Path(__file__).resolve().parent / "data" / "zoo_indexes"
MANIFEST = (
  json.loads((ZOO_INDEXES / "manifest.json").read_text())
  if (ZOO_INDEXES / "manifest.json").is_file()
  else {}
)
_META = {"ssd": fingerprint.SSD, "faster_rcnn": fingerprint.FASTER_RCNN}


def test_every_zoo_config_has_its_index():
  assert len(MANIFEST) == 39
  for entry in MANIFEST.values():
    assert (ZOO_INDEXES / entry["config"].removesuffix(".config") / "ckpt-0.index").is_file()


@pytest.mark.parametrize("config", sorted(MANIFEST))
def test_the_configs_own_feature_extractor_fits_and_the_classes_are_exact(config):
  entry = MANIFEST[config]
  prefix = ZOO_INDEXES / config.removesuffix(".config") / "ckpt-0"
  fp = fingerprint.fingerprint(inventory.read_inventory(str(prefix)))
  assert fp.checkpoint_kind == fingerprint.DETECTION
  assert entry["feature_extractor_type"] in fp.feature_extractor_types, fp.evidence
  assert fp.num_classes() == entry["num_classes"], fp.evidence
