"""The od_guard demo (`make demo`).

1. Builds the bundled tiny SSD MobileNet V2 config with the OD API's own model
   builder and saves its checkpoint the way model_main_tf2 does.
2. Runs `od-guard inspect` on it, and on the two real users' checkpoints in
   ../shared/realworld (index files only: their data shards were too large to
   keep, which od-guard reports).

Usage: python examples/demo.py --out demo_out
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
CONFIG = HERE / "tiny_ssd_mobilenet_v2" / "pipeline.config"
REALWORLD = REPO.parent / "shared" / "realworld" / "user_checkpoints"


def step(message: str) -> None:
  print(f"\n=== {message}", flush=True)


def od_guard(*args: str) -> int:
  print(f"$ od-guard {' '.join(args)}", flush=True)
  return subprocess.call([sys.executable, "-m", "od_guard", *args])


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="demo_out", help="where the demo writes its files")
  args = parser.parse_args()
  out = pathlib.Path(args.out).resolve()
  out.mkdir(parents=True, exist_ok=True)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

  step(f"Building the model of {CONFIG.relative_to(REPO)} with the OD API "
       "(importing TensorFlow and the OD API takes ~10-20 s)")
  t0 = time.time()
  from od_guard.testing import tiny_odapi
  config = tiny_odapi.load_pipeline_config(str(CONFIG))
  model = tiny_odapi.build_model(config)
  prefix = tiny_odapi.save_detection_checkpoint(model, str(out / "pretrained"))
  print(f"saved {prefix} in {time.time() - t0:.1f} s")

  step("Inspecting it: no TensorFlow is imported, only the index and object graph are read")
  rc = od_guard("inspect", str(out / "pretrained"))

  for name in ("sign_language_ssd_mobilenet_v2_fpnlite_320", "bitewing_efficientdet_d0"):
    path = REALWORLD / name / "checkpoint"
    if not path.exists():
      print(f"(skipping {name}: {path} is not here)")
      continue
    step(f"A real user's checkpoint: {name} (index only)")
    rc |= od_guard("inspect", str(path), "--depth", "2")

  step("Done")
  print(f"Files are in {out}. Try: od-guard inspect {out / 'pretrained'} --json")
  return rc


if __name__ == "__main__":
  sys.exit(main())
