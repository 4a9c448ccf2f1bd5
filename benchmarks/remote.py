"""Benchmark: a checkpoint on S3 listed by od_guard (no TensorFlow) versus TensorFlow.

Writes a TF2 checkpoint with TensorFlow (~100 MB, 2,000 variables), uploads it
to moto's S3 server on 127.0.0.1, then measures, alternating round by round:
  (a) the whole `od-guard inspect --json s3://...` process (this interpreter:
      fsspec + s3fs, no TensorFlow);
  (b) the floor: `import tensorflow; tf.train.list_variables(PATH)` on the
      same checkpoint on local disk (TensorFlow reads s3:// only through
      tensorflow-io);
  (c) `od-guard inspect --json PATH` on local disk, for reference;
  (d) with --tensorflow-io only: `import tensorflow, tensorflow_io;
      tf.train.list_variables('s3://...')` against the same server (with
      tensorflow-io 0.37.1 and TF 2.15.1 it did not find the checkpoint on
      moto and took ~160 s, so it is not a default step).
Bytes read are counted by the S3 server (every response, headers included).
Prints one JSON line: median wall times, the bytes the remote step fetched,
and the checkpoint's size.

Run with the plain environment's Python (the S3 server and s3fs); TensorFlow
runs in --tf-python (default: .venv/odapi/bin/python).

Usage: .venv/plain/bin/python benchmarks/remote.py [--variables 2000] [--megabytes 100]
  [--rounds 3] [--tensorflow-io]
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import harness
import inventory
from support import object_store

_LIST = """
import sys
import tensorflow as tf
if sys.argv[1].startswith("s3://"):
  import tensorflow_io  # noqa: F401  registers s3://
print(len(tf.train.list_variables(sys.argv[1])), flush=True)
"""
# tensorflow-io 0.37 aborts at interpreter exit ("pure virtual method called")
# after its S3 file system ran; the listing is printed and complete by then.
_ABORT = (-6, 134)


def _has_tensorflow_io(python: str) -> bool:
  code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow_io') is None)"
  return subprocess.run([python, "-c", code], env=harness.ENV, check=False).returncode == 0


def main() -> None:
  parser = harness.parser(__doc__, rounds=3)
  parser.add_argument("--variables", type=int, default=2_000)
  parser.add_argument("--megabytes", type=float, default=100.0)
  parser.add_argument(
    "--tf-python", default=str(harness.REPO / ".venv" / "odapi" / "bin" / "python")
  )
  parser.add_argument("--tensorflow-io", action="store_true", help="also step (d)")
  args = parser.parse_args()
  if importlib.util.find_spec("s3fs") is None:
    raise SystemExit("run with the plain environment's Python (s3fs, moto): .venv/plain/bin/python")

  per_block = 100
  blocks = max(1, args.variables // per_block)
  width = int(args.megabytes * 1e6 / 4 / (blocks * per_block))
  server = object_store.start_s3()
  try:
    with harness.workdir("od_guard_bench_remote_") as workdir:
      harness.progress(f"writing {blocks * per_block:,} variables with TensorFlow ...")
      _, _, out = harness.run_process(
        [
          args.tf_python,
          "-c",
          inventory._WRITE,
          str(blocks),
          str(per_block),
          str(width),
          str(workdir / "ckpt"),
        ]
      )
      prefix = out.strip().splitlines()[-1]
      size = sum(p.stat().st_size for p in workdir.iterdir() if p.name.startswith("ckpt-1."))
      server.make_bucket("bench")
      for p in workdir.iterdir():
        server.upload(str(p), "bench", f"run/{p.name}")
      uri = server.url("bench", "run/ckpt-1")
      harness.ENV.update(object_store.client_env(server))
      # tensorflow-io's S3 file system reads its own variables, not AWS_ENDPOINT_URL.
      harness.ENV.update(
        S3_ENDPOINT=server.endpoint.split("://", 1)[1], S3_USE_HTTPS="0", S3_VERIFY_SSL="0",
        AWS_REGION=object_store.REGION, PYTHONPATH=str(harness.REPO),
      )  # fmt: skip
      steps = {
        "a": ([sys.executable, "-m", "od_guard", "inspect", "--json", uri], harness.wall_seconds)
      }
      steps["b"] = ([args.tf_python, "-c", _LIST, prefix], harness.wall_seconds)
      steps["c"] = (
        [sys.executable, "-m", "od_guard", "inspect", "--json", prefix],
        harness.wall_seconds,
      )
      tfio = args.tensorflow_io and _has_tensorflow_io(args.tf_python)
      if tfio:
        steps["d"] = ([args.tf_python, "-c", _LIST, uri], harness.wall_seconds)

      fetched = {name: [] for name in steps}

      def counted(name, seconds_of):
        def pick(wall, out):
          fetched[name].append(server.served.bytes_for())
          server.served.reset()
          return seconds_of(wall, out)

        return pick

      server.served.reset()
      times, _ = harness.measure(
        args.rounds,
        {name: (argv, counted(name, pick)) for name, (argv, pick) in steps.items()},
        ok=(0, *_ABORT),
      )
  finally:
    server.stop()
  med = harness.medians(times)
  results = {
    "checkpoint_mb": round(size / 1e6, 1),
    "variables": blocks * per_block,
    "rounds": args.rounds,
    "odguard_inspect_s3_s": round(med["a"], 3),
    "odguard_inspect_s3_bytes": max(fetched["a"]),
    "tf_list_variables_local_s": round(med["b"], 3),
    "odguard_inspect_local_s": round(med["c"], 3),
    "ratio_tf_local_over_odguard_s3": round(med["b"] / med["a"], 1),
  }
  if tfio:
    results["tf_io_list_variables_s3_s"] = round(med["d"], 3)
    results["tf_io_list_variables_s3_bytes"] = max(fetched["d"])
  harness.emit("remote", results)


if __name__ == "__main__":
  main()
