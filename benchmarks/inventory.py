"""Benchmark: reading a checkpoint's inventory with od_guard versus TensorFlow.

Writes a ~2 GB TF2 checkpoint with ~50,000 variables, then measures, alternating
round by round:
  (a) the whole `od-guard inspect --json PATH` process;
  (b) a whole process doing `import tensorflow; tf.train.list_variables(PATH)`;
  (c) a full `tf.train.Checkpoint(...).restore(PATH)` of the same variables, timed
      in-process after imports and variable creation (run in its own process so
      that its peak RSS is its own).
Prints one JSON line: median times, ratios b/a and c/a, peak RSS of each.
Targets: b/a >= 20, c/a >= 100, od-guard peak RSS < 100 MB.

Usage: python benchmarks/inventory.py [--variables 50000] [--gigabytes 2] [--rounds 3]
"""

from __future__ import annotations

import sys

import harness

# The model: `blocks` blocks of `per_block` variables, each of `width` floats,
# tracked as model/blocks/<i>/<j> like a real layered model.
_BUILD = """
import tensorflow as tf
class Block(tf.Module):
  def __init__(self, n, width):
    super().__init__()
    self.kernels = [tf.Variable(tf.zeros([width]), name=f"k{j}") for j in range(n)]
class Net(tf.Module):
  def __init__(self, blocks, n, width):
    super().__init__()
    self.blocks = [Block(n, width) for _ in range(blocks)]
"""

_WRITE = (
  _BUILD
  + """
import sys
blocks, n, width, prefix = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
net = Net(blocks, n, width)
for b in net.blocks:
  for v in b.kernels:
    v.assign(tf.random.uniform([width]))
print(tf.train.Checkpoint(model=net).save(prefix))
"""
)

_RESTORE = (
  _BUILD
  + """
import json, resource, sys, time
blocks, n, width, prefix = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
net = Net(blocks, n, width)
t = time.perf_counter()
tf.train.Checkpoint(model=net).restore(prefix).assert_consumed()
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed}))
"""
)

_LIST = """
import sys
import tensorflow as tf
print(len(tf.train.list_variables(sys.argv[1])))
"""


def main() -> None:
  parser = harness.parser(__doc__, rounds=3)
  harness.checkpoint_arguments(parser, variables=50_000)
  args = parser.parse_args()

  per_block = 100
  blocks = max(1, args.variables // per_block)
  width = int(args.gigabytes * 1e9 / 4 / (blocks * per_block))
  with harness.workdir("od_guard_bench_", args.workdir) as workdir:
    model = [str(blocks), str(per_block), str(width)]
    prefix, size = harness.write_checkpoint(
      _WRITE, model, workdir, variables=blocks * per_block, width=width
    )

    times, rss = harness.measure(
      args.rounds,
      {
        "a": (
          [sys.executable, "-m", "od_guard", "inspect", "--json", prefix],
          harness.wall_seconds,
        ),
        "b": ([sys.executable, "-c", _LIST, prefix], harness.wall_seconds),
        "c": ([sys.executable, "-c", _RESTORE, *model, prefix], harness.last_json_seconds),
      },
    )
  med = harness.medians(times)
  harness.emit(
    "inventory",
    {
      "variables": blocks * per_block,
      "checkpoint_bytes": size,
      "rounds": args.rounds,
      "inspect_seconds": round(med["a"], 4),
      "tf_list_variables_process_seconds": round(med["b"], 3),
      "tf_restore_seconds": round(med["c"], 3),
      "ratio_list_over_inspect": round(med["b"] / med["a"], 1),
      "ratio_restore_over_inspect": round(med["c"] / med["a"], 1),
      "inspect_peak_rss_mb": round(rss["a"], 1),
      "tf_list_variables_peak_rss_mb": round(rss["b"], 1),
      "tf_restore_peak_rss_mb": round(rss["c"], 1),
      "targets_met": med["b"] / med["a"] >= 20 and med["c"] / med["a"] >= 100 and rss["a"] < 100,
    },
  )


if __name__ == "__main__":
  main()
