"""Benchmark: what od_guard's OD API compat layer costs on its own.

In fresh interpreters of the running Python (run it with each environment's:
.venv/odapi for TF 2.15, .venv/modern for TF 2.20), round by round:
  (a) `import od_guard.odapi.compat` + `install()`: the layer alone (it
      imports neither TensorFlow nor the OD API);
  (b) then `from object_detection.protos import pipeline_pb2`: the OD API's
      protos, which the layer builds from their descriptors under protobuf >= 4
      (the real protoc-3 modules under protobuf 3.20);
  (c) then `import tensorflow` and `from object_detection import model_lib_v2`
      (what the drop-in imports before its first step), for scale.
Prints one JSON line: medians of (a), (b), (c), the shims installed, and (a)
and (a)+(b) as fractions of the whole import (a)+(b)+(c).

Usage: .venv/modern/bin/python benchmarks/compat.py [--rounds 5]
"""

from __future__ import annotations

import json
import subprocess
import sys

import harness

_CHILD = """
import json, time
t0 = time.perf_counter()
from od_guard.odapi import compat
installed = compat.install()
t1 = time.perf_counter()
from object_detection.protos import pipeline_pb2
t2 = time.perf_counter()
import tensorflow as tf
from object_detection import model_lib_v2
t3 = time.perf_counter()
print(json.dumps({"layer": t1 - t0, "protos": t2 - t1, "rest": t3 - t2,
                  "installed": installed, "tensorflow": tf.__version__}))
"""


def main() -> None:
  args = harness.parser(__doc__, rounds=5).parse_args()
  samples: dict[str, list[float]] = {"layer": [], "protos": [], "rest": []}
  last: dict = {}
  for i in range(args.rounds):
    harness.progress(f"round {i + 1}/{args.rounds}")
    r = subprocess.run(
      [sys.executable, "-c", _CHILD], capture_output=True, text=True, env=harness.ENV, check=True
    )
    last = json.loads(r.stdout.strip().splitlines()[-1])
    for key in samples:
      samples[key].append(last[key])
  m = harness.medians(samples)
  whole = m["layer"] + m["protos"] + m["rest"]
  harness.emit(
    "compat",
    {
      "python": sys.version.split()[0],
      "tensorflow": last["tensorflow"],
      "shims": last["installed"],
      "rounds": args.rounds,
      "layer_install_s": round(m["layer"], 4),
      "odapi_protos_s": round(m["protos"], 4),
      "tensorflow_and_model_lib_v2_s": round(m["rest"], 3),
      "layer_fraction": round(m["layer"] / whole, 4),
      "layer_and_protos_fraction": round((m["layer"] + m["protos"]) / whole, 4),
    },
  )


if __name__ == "__main__":
  main()
