"""Benchmark: `od-guard verify` against a plain read of the same files and TF's reader.

Writes a TF2 checkpoint of about --gigabytes (default 2) of float32 variables,
warms the page cache, then measures, alternating round by round, each in its
own process:
  (a) `od-guard verify --json PATH`: the scan's own seconds (CRC32C and value
      health of every tensor) and the whole process's wall time and peak RSS,
      with the CRC32C backend od_guard picks (`crc32c` when installed, see
      `od_guard.checkpoint.verify.crc_backend`), and again with
      OD_GUARD_CRC32C=google (google-crc32c, what a default install uses);
  (b) a plain sequential read of the index and data files in 8 MB chunks;
  (c) `tf.train.load_checkpoint(PATH)` and `get_tensor` of every key, timed
      after `import tensorflow`, and as a whole process.
Prints one JSON line: median throughputs, verify / plain read, TF / verify
(in-process seconds, and whole processes: what a user waits for), peak RSS.
Targets: verify >= 70% of the plain read's throughput, >= 5x faster than TF's
reader, peak RSS < 200 MB. (In-process, 5x TF's reader would need verify to be
faster than the plain read whenever TF reaches 20% of it; both ratios are
printed and judged.)

Usage: python benchmarks/verify.py [--gigabytes 2] [--variables 2000] [--rounds 3]
"""

from __future__ import annotations

import sys

import harness

sys.path.insert(0, str(harness.REPO))
from od_guard.checkpoint import verify as verify_lib

_WRITE = """
import sys
import tensorflow as tf
n, width, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
class Net(tf.Module):
  def __init__(self):
    super().__init__()
    self.kernels = [tf.Variable(tf.random.normal([width]), name=f"k{j}") for j in range(n)]
print(tf.train.Checkpoint(model=Net()).save(prefix))
"""

_PLAIN = """
import glob, json, sys, time
t = time.perf_counter()
total = 0
for path in sorted(glob.glob(sys.argv[1] + ".*")):
  with open(path, "rb", buffering=0) as f:
    while chunk := f.read(8 << 20):
      total += len(chunk)
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": total}))
"""

_TF = """
import json, sys, time
import tensorflow as tf
t = time.perf_counter()
reader = tf.train.load_checkpoint(sys.argv[1])
total = 0
for key in reader.get_variable_to_shape_map():
  value = reader.get_tensor(key)
  total += len(value) if isinstance(value, bytes) else value.nbytes
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": total}))
"""


def main() -> None:
  parser = harness.parser(__doc__, rounds=3)
  harness.checkpoint_arguments(parser, variables=2000)
  args = parser.parse_args()

  width = int(args.gigabytes * 1e9 / 4 / args.variables)
  with harness.workdir("od_guard_bench_verify_", args.workdir) as workdir:
    prefix, size = harness.write_checkpoint(
      _WRITE, [str(args.variables), str(width)], workdir, variables=args.variables, width=width
    )
    harness.run_process([sys.executable, "-c", _PLAIN, prefix])  # warm the page cache

    walls: dict[str, list[float]] = {}
    verify = [sys.executable, "-m", "od_guard", "verify", "--json", prefix]
    secs, rss = harness.measure(
      args.rounds,
      {
        "verify": (verify, harness.last_json_seconds),
        "verify_google": (verify, harness.last_json_seconds),
        "plain": ([sys.executable, "-c", _PLAIN, prefix], harness.last_json_seconds),
        "tf": ([sys.executable, "-c", _TF, prefix], harness.last_json_seconds),
      },
      ok=(0, 1),  # verify: 1 for findings
      walls=walls,
      env={"verify_google": {verify_lib.CRC_BACKEND_ENV: "google"}},
    )
  med = harness.medians(secs)
  wall = harness.medians(walls)
  mbps = {k: size / 1e6 / v for k, v in med.items()}
  of_plain = mbps["verify"] / mbps["plain"]
  over_tf = med["tf"] / med["verify"]
  over_tf_process = wall["tf"] / wall["verify"]
  targets = {
    "verify_at_least_70pct_of_plain_read": of_plain >= 0.7,
    "verify_5x_tf_reader_in_process": over_tf >= 5,
    "verify_5x_tf_reader_whole_process": over_tf_process >= 5,
    "verify_peak_rss_under_200mb": rss["verify"] < 200,
  }
  harness.emit(
    "verify",
    {
      "checkpoint_bytes": size,
      "variables": args.variables,
      "rounds": args.rounds,
      "crc32c_backend": verify_lib.crc_backend()[1],
      "verify_mb_per_s": round(mbps["verify"], 1),
      "verify_google_crc32c_mb_per_s": round(mbps["verify_google"], 1),
      "plain_read_mb_per_s": round(mbps["plain"], 1),
      "tf_reader_mb_per_s": round(mbps["tf"], 1),
      "verify_fraction_of_plain_read": round(of_plain, 3),
      "verify_google_crc32c_fraction_of_plain_read": round(
        mbps["verify_google"] / mbps["plain"], 3
      ),
      "tf_reader_seconds_over_verify": round(over_tf, 2),
      "verify_process_seconds": round(wall["verify"], 3),
      "tf_reader_process_seconds": round(wall["tf"], 3),
      "tf_process_seconds_over_verify_process": round(over_tf_process, 2),
      "verify_peak_rss_mb": round(rss["verify"], 1),
      "plain_read_peak_rss_mb": round(rss["plain"], 1),
      "tf_reader_peak_rss_mb": round(rss["tf"], 1),
      "targets": targets,
      "targets_met": all(targets.values()),
    },
  )


if __name__ == "__main__":
  main()
