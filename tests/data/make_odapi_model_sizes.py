"""Writes tests/data/odapi_model_sizes.json: the 8 zoo configs of
tests/data/zoo_configs built by the OD API on TF 2.15 (the odapi environment),
summarized (tests/support/zoo_models.py). tests/modern_odapi_test.py builds the
same on TF 2.20 through od_guard's compat layer and compares.

Usage (odapi environment, from the repository root, ~1 min):
  .venv/odapi/bin/python tests/data/make_odapi_model_sizes.py
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from support import zoo_models  # noqa: E402  (after the path set-up)


def main() -> int:
  r = subprocess.run(
    [
      sys.executable,
      "-c",
      zoo_models.BUILD_SCRIPT,
      str(HERE / "zoo_configs"),
      json.dumps(zoo_models.SIZES),
    ],
    capture_output=True,
    text=True,
    check=True,
    env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3"),
  )
  built = json.loads(r.stdout.strip().splitlines()[-1])
  if not built["tensorflow"].startswith("2.15"):
    sys.exit(f"run this in the odapi environment (TF 2.15), not TF {built['tensorflow']}")
  zoo_models.DUMP.write_text(json.dumps(built, indent=1, sort_keys=True) + "\n", encoding="utf-8")
  print(f"wrote {zoo_models.DUMP}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
