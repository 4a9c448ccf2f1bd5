"""Builds every TF2 Detection Zoo config with the OD API and keeps the index of
the checkpoint it saves, as the zoo saves ckpt-0 (root object 'model').

Each config from ../shared/realworld/zoo_configs is built as published except
for the image size (small, so it builds on a CPU) and what the model builder
cannot do without locally (keypoint label maps); `num_classes` is kept, so the
class heads have the zoo's shapes. Only `<name>/ckpt-0.index` is kept under
tests/data/zoo_indexes/ (names, shapes, dtypes: what the fingerprint reads); the
data shards are dropped. tests/zoo_fingerprint_test.py fingerprints each.

Usage (odapi environment, from the repository root, ../shared present):
  python tests/data/make_zoo_indexes.py [NAME_FRAGMENT ...]   # resumes: skips built ones
  python tests/data/make_zoo_indexes.py --force ...
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(REPO))

from conftest import ZOO  # noqa: E402  one definition of the shared location

OUT = HERE / "zoo_indexes"
# Sizes tried in order: the smallest every backbone accepts (ResNet FPN needs >= 129
# and a multiple of 2**max_level; Hourglass a multiple of 128).
SIZES = (128, 256)
# A config that a public pipeline_pb2 cannot parse: its model section is built alone.
_INTERNAL_READER = re.compile(r"\n\s*\[[a-z_.]+\]\s*\{.*?\n\s*\}", re.S)

KEYPOINT_LABEL_MAP = """item {
  name: "/m/01g317"
  id: 1
  display_name: "person"
  keypoints { id: 0 label: "nose" }
  keypoints { id: 1 label: "left_eye" }
  keypoints { id: 2 label: "right_eye" }
  keypoints { id: 3 label: "left_ear" }
  keypoints { id: 4 label: "right_ear" }
  keypoints { id: 5 label: "left_shoulder" }
  keypoints { id: 6 label: "right_shoulder" }
  keypoints { id: 7 label: "left_elbow" }
  keypoints { id: 8 label: "right_elbow" }
  keypoints { id: 9 label: "left_wrist" }
  keypoints { id: 10 label: "right_wrist" }
  keypoints { id: 11 label: "left_hip" }
  keypoints { id: 12 label: "right_hip" }
  keypoints { id: 13 label: "left_knee" }
  keypoints { id: 14 label: "right_knee" }
  keypoints { id: 15 label: "left_ankle" }
  keypoints { id: 16 label: "right_ankle" }
}
"""


def _load(path: pathlib.Path):
  from google.protobuf import text_format
  from object_detection.protos import pipeline_pb2

  # Some zoo configs leave the placeholder unquoted, which no parser accepts.
  text = re.sub(
    r":\s*PATH_TO_BE_CONFIGURED\b", ': "PATH_TO_BE_CONFIGURED"', path.read_text("utf-8")
  )
  config = pipeline_pb2.TrainEvalPipelineConfig()
  try:
    text_format.Merge(text, config)
    return config, ""
  except text_format.ParseError as e:
    model = re.search(r"^model\s*\{.*?^\}", text, re.S | re.M)
    config = pipeline_pb2.TrainEvalPipelineConfig()
    text_format.Merge(model.group(0), config)
    return config, f"model section only ({str(e)[:80]})"


def _build_one(name: str, workdir: str) -> dict:
  import tensorflow as tf

  from od_guard.odapi import model as odapi_model
  from od_guard.testing import tiny_odapi

  config, note = _load(ZOO / name)
  meta = config.model.WhichOneof("model")
  arch = getattr(config.model, meta)
  if meta == "center_net":
    label_map = os.path.join(workdir, "keypoints.pbtxt")
    pathlib.Path(label_map).write_text(KEYPOINT_LABEL_MAP, encoding="utf-8")
    if arch.keypoint_estimation_task:
      arch.keypoint_label_map_path = label_map
  last = None
  for size in SIZES:
    small = tiny_odapi.shrink_pipeline_config(
      config, image_size=size, num_classes=arch.num_classes, batch_size=1
    )
    tf.keras.backend.clear_session()
    try:
      model = odapi_model.build(small)
    except odapi_model.ModelBuildError as e:
      last = e
      continue
    prefix = os.path.join(workdir, "ckpt-0")
    tf.train.Checkpoint(model=model).write(prefix)
    dest = OUT / name.removesuffix(".config")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(prefix + ".index", dest / "ckpt-0.index")
    return {
      "config": name,
      "image_size": size,
      "num_classes": arch.num_classes,
      "feature_extractor_type": arch.feature_extractor.type,
      "note": note,
    }
  raise RuntimeError(f"{name}: {last}")


def main(argv: list[str]) -> int:
  if not ZOO.is_dir():
    print(f"make_zoo_indexes: {ZOO} does not exist (set OD_GUARD_SHARED_DIR)", file=sys.stderr)
    return 2
  from od_guard.odapi import compat

  compat.apply()
  force = "--force" in argv
  wanted = [a for a in argv if not a.startswith("--")]
  OUT.mkdir(parents=True, exist_ok=True)
  manifest_path = OUT / "manifest.json"
  manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
  failed = []
  for path in sorted(ZOO.glob("*.config")):
    name = path.name
    if wanted and not any(w in name for w in wanted):
      continue
    if name in manifest and not force:
      continue
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
      try:
        entry = _build_one(name, workdir)
      except Exception as e:  # pylint: disable=broad-except  report and go on
        failed.append(name)
        print(f"FAIL {name}: {type(e).__name__}: {str(e)[:300]}", flush=True)
        continue
    entry["seconds"] = round(time.monotonic() - start, 1)
    manifest[name] = entry
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    print(f"ok   {name} ({entry['seconds']} s, {entry['image_size']} px)", flush=True)
  print(f"{len(manifest)} built, {len(failed)} failed: {failed}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
