"""Benchmark: the save-time naming check against a plain save.

A ~500 MB model (125 variables of 1M floats) is saved with
`tf.train.Checkpoint.save` and with `od_guard.save_guard.save` (the same save,
then the names checked against the odapi preset), alternating, in one process.
Prints one JSON line: median times, the check alone, and the overhead ratio.
Target: overhead <= 1%.

Usage: python benchmarks/save_overhead.py [--rounds 5] [--megabytes 500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--megabytes", type=int, default=500)
  args = parser.parse_args()
  import tensorflow as tf

  from od_guard.naming import rules as naming_rules
  from od_guard.naming import save_guard

  n = max(1, args.megabytes * (1 << 20) // (4 << 20))
  root = tf.Module()
  root._feature_extractor = tf.Module()
  root._feature_extractor.weights = [tf.Variable(tf.random.normal([1 << 20])) for _ in range(n)]
  ckpt = tf.train.Checkpoint(model=root)
  rules = naming_rules.preset("odapi")
  work = tempfile.mkdtemp(prefix="od_guard_save_")
  plain, guarded, check = [], [], []
  try:
    for r in range(args.rounds):
      t = time.perf_counter()
      ckpt.write(os.path.join(work, f"plain-{r}"))
      plain.append(time.perf_counter() - t)
      t = time.perf_counter()
      path = ckpt.write(os.path.join(work, f"guarded-{r}"))
      t_check = time.perf_counter()
      save_guard.check_saved(path, rules, mode="error")
      guarded.append(time.perf_counter() - t)
      check.append(time.perf_counter() - t_check)
      for p in os.listdir(work):
        os.unlink(os.path.join(work, p))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  p, g, c = statistics.median(plain), statistics.median(guarded), statistics.median(check)
  print(
    json.dumps(
      {
        "benchmark": "save_overhead",
        "variables": n,
        "checkpoint_megabytes": round(n * 4, 1),
        "rounds": args.rounds,
        "plain_save_seconds": round(p, 3),
        "guarded_save_seconds": round(g, 3),
        "check_seconds": round(c, 4),
        "overhead_ratio": round(c / p, 5),
        "target_met": c / p <= 0.01,
      }
    )
  )


if __name__ == "__main__":
  main()
