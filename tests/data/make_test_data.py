"""Copies into tests/data the few pieces of the shared real-world data that the
suite cannot do without.

A clone has no ../shared beside it (CI has), and tests that only *use* a zoo
config as the model definition of a tiny OD API model must still run there.
The TF2 Detection Zoo configs below are copied verbatim from
../shared/realworld/zoo_configs (published in tensorflow/models,
research/object_detection/configs/tf2, Apache 2.0); tests shrink them at run
time. Nothing else is copied: checkpoints are written by the fixtures in
tests/conftest.py with TensorFlow itself.

Usage (from the repository root, with ../shared present):
  python tests/data/make_test_data.py          # (re)write the copies
  python tests/data/make_test_data.py --check  # exit 1 if a copy differs
"""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from conftest import ZOO  # noqa: E402  one definition of the shared location
from conftest import ZOO_COPIES  # noqa: E402

# The zoo configs the suite builds models from (and the tests that need them).
ZOO_CONFIGS = (
  "ssd_mobilenet_v2_320x320_coco17_tpu-8.config",  # odapi_world, compat, fingerprint
  "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config",  # odapi_checkpoint, fingerprint
  "ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config",  # the wrong-backbone scenarios
  "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8.config",  # fingerprint
  "ssd_efficientdet_d0_512x512_coco17_tpu-8.config",  # fingerprint
  "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8.config",  # fingerprint
  "center_net_resnet101_v1_fpn_512x512_coco17_tpu-8.config",  # fingerprint
  "center_net_deepmac_1024x1024_coco_tpu-128.config",  # CenterNet's retired "fine_tune"
)


def stale() -> list[str]:
  """The copies that are missing or differ from the shared originals."""
  return [
    name
    for name in ZOO_CONFIGS
    if not (ZOO_COPIES / name).is_file()
    or (ZOO_COPIES / name).read_bytes() != (ZOO / name).read_bytes()
  ]


def main(argv: list[str]) -> int:
  if not ZOO.is_dir():
    print(f"make_test_data: {ZOO} does not exist (set OD_GUARD_SHARED_DIR)", file=sys.stderr)
    return 2
  if "--check" in argv:
    for name in stale():
      print(f"make_test_data: {ZOO_COPIES / name} differs from {ZOO / name}", file=sys.stderr)
    return 1 if stale() else 0
  ZOO_COPIES.mkdir(parents=True, exist_ok=True)
  for name in ZOO_CONFIGS:
    (ZOO_COPIES / name).write_bytes((ZOO / name).read_bytes())
  print(f"make_test_data: copied {len(ZOO_CONFIGS)} zoo configs to {ZOO_COPIES}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
