"""Benchmark: `od-guard remap` throughput and memory.

Writes a ~0.5 GB TF2 checkpoint (8 x 64 MB tensors, 256 small ones), then,
alternating, in separate processes: (a) a plain sequential read of every tensor
(`tf.train.load_checkpoint(...).get_tensor` in key order); (b) `remap` of all
keys to a new prefix. Prints one JSON line: times, throughput ratio b/a (read
throughput = bytes / time), peak RSS growth of the remap process over its
baseline after imports, and the largest tensor. Targets: throughput >= 50% of
the plain read; RSS growth <= largest tensor + 100 MB.

Usage: python benchmarks/remap.py [--rounds 3]
"""

from __future__ import annotations

import json
import subprocess
import sys

import harness

_WRITE = """
import sys, tensorflow as tf
root = tf.Module()
root.big = [tf.Variable(tf.random.normal([16 << 20])) for _ in range(8)]
root.small = [tf.Variable(tf.random.normal([1024])) for _ in range(256)]
print(tf.train.Checkpoint(model=root).write(sys.argv[1]))
"""
_READ = """
import json, resource, sys, time, tensorflow as tf
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
reader = tf.train.load_checkpoint(sys.argv[1])
total = 0
for key in sorted(reader.get_variable_to_shape_map()):
  value = reader.get_tensor(key)
  total += len(value) if isinstance(value, bytes) else value.nbytes
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": total}))
"""
_REMAP = """
import json, resource, sys, time
import tensorflow as tf
from od_guard.naming import remap
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
remap.remap(sys.argv[1], sys.argv[2], [remap.Rule.parse("model/->net/")], overwrite=True)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rss_growth_mb": (peak - base) / 1024}))
"""


def _last_line(code: str, *args: str) -> str:
  """Runs `code` in a fresh Python; returns the last line it printed."""
  r = subprocess.run(
    [sys.executable, "-c", code, *args],
    capture_output=True,
    text=True,
    env=harness.ENV,
    timeout=1800,
  )
  if r.returncode != 0:
    raise SystemExit(r.stderr[-2000:])
  return r.stdout.strip().splitlines()[-1]


def main() -> None:
  args = harness.parser(__doc__, rounds=3).parse_args()
  with harness.workdir("od_guard_remap_") as work:
    src = _last_line(_WRITE, str(work / "src"))
    reads, remaps, growth = [], [], []
    size = 0
    for _ in range(args.rounds):
      read = json.loads(_last_line(_READ, src))
      reads.append(read["seconds"])
      size = read["bytes"]
      out = json.loads(_last_line(_REMAP, src, str(work / "dst")))
      remaps.append(out["seconds"])
      growth.append(out["rss_growth_mb"])
  med = harness.medians({"read": reads, "remap": remaps})
  a, b = med["read"], med["remap"]
  largest_mb = (16 << 20) * 4 / (1 << 20)
  harness.emit(
    "remap",
    {
      "bytes": size,
      "rounds": args.rounds,
      "plain_read_seconds": round(a, 3),
      "remap_seconds": round(b, 3),
      "throughput_ratio": round(a / b, 3),
      "remap_rss_growth_mb": round(max(growth), 1),
      "largest_tensor_mb": largest_mb,
      "targets_met": a / b >= 0.5 and max(growth) <= largest_mb + 100,
    },
  )


if __name__ == "__main__":
  main()
