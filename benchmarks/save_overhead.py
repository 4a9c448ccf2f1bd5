"""Benchmark: the save-time naming check against a plain save.

A ~500 MB model (125 variables of 1M floats) is saved with
`tf.train.Checkpoint.save` and with `od_guard.save_guard.save` (the same save,
then the names checked against the odapi preset), alternating, in one process.
Prints one JSON line: median times, the check alone, and the overhead ratio.
Target: overhead <= 1%.

Usage: python benchmarks/save_overhead.py [--rounds 5] [--megabytes 500]
"""

from __future__ import annotations

import os
import time

import harness

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
  parser = harness.parser(__doc__, rounds=5)
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
  times = {"plain": [], "guarded": [], "check": []}
  with harness.workdir("od_guard_save_") as work:
    for r in range(args.rounds):
      t = time.perf_counter()
      ckpt.write(str(work / f"plain-{r}"))
      times["plain"].append(time.perf_counter() - t)
      t = time.perf_counter()
      path = ckpt.write(str(work / f"guarded-{r}"))
      t_check = time.perf_counter()
      save_guard.check_saved(path, rules, mode="error")
      times["guarded"].append(time.perf_counter() - t)
      times["check"].append(time.perf_counter() - t_check)
      for written in work.iterdir():
        written.unlink()
  med = harness.medians(times)
  p, g, c = med["plain"], med["guarded"], med["check"]
  harness.emit(
    "save_overhead",
    {
      "variables": n,
      "checkpoint_megabytes": round(n * 4, 1),
      "rounds": args.rounds,
      "plain_save_seconds": round(p, 3),
      "guarded_save_seconds": round(g, 3),
      "check_seconds": round(c, 4),
      "overhead_ratio": round(c / p, 5),
      "target_met": c / p <= 0.01,
    },
  )


if __name__ == "__main__":
  main()
