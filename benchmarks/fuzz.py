"""Fuzzing: structure-aware mutations of valid files through every reader.

For each reader (the tensor-bundle index, the object graph, Keras HDF5, the
.keras zip, and the pipeline.config reader), mutates a few valid files
--iterations times (byte flips, interesting byte values, inserted and deleted
runs, truncations, endless and huge varints, spliced ranges, and for zips,
rewritten header fields) and reads each result. A reader may return a result
or raise an `OdGuardError`; anything else is counted as a non-typed exception
(with the first few distinct tracebacks summarized), and each input must be
read within --time-limit seconds (SIGALRM).

Prints one JSON line: per reader, iterations, non-typed exceptions, hangs,
the slowest input's seconds, and the process's peak RSS.

Usage: python benchmarks/fuzz.py [--iterations 100000] [--readers index,graph,...] [--seed 0]
Outside CI; 100,000 iterations per reader take about 10-20 minutes.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
import resource
import signal
import struct
import sys
import time
import traceback

import harness

sys.path.insert(0, str(harness.REPO))
sys.path.insert(0, str(harness.REPO / "tests" / "data"))

import make_hostile_corpus as corpus

from od_guard import errors

READERS = ("index", "graph", "h5", "keras", "config")


class _Hang(Exception):
  pass


def _alarm(_signum, _frame):
  raise _Hang()


def _varint_positions(data: bytes) -> list[int]:
  return [i for i, b in enumerate(data) if b & 0x80] or [0]


def mutate(rng: random.Random, data: bytes, donors: list[bytes]) -> bytes:
  """One to four structure-aware edits."""
  b = bytearray(data)
  for _ in range(rng.randint(1, 4)):
    if not b:
      b = bytearray(rng.choice(donors)[:16])
    i = rng.randrange(len(b))
    op = rng.randrange(10)
    if op == 0:
      b[i] ^= 1 << rng.randrange(8)
    elif op == 1:
      b[i] = rng.choice((0, 1, 0x7F, 0x80, 0xFE, 0xFF))
    elif op == 2:
      b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 3:
      del b[i : i + rng.randint(1, 32)]
    elif op == 4:
      del b[i:]
    elif op == 5:  # an endless or huge varint at a varint-looking byte
      j = rng.choice(_varint_positions(bytes(b)))
      b[j : j + 1] = b"\xff" * rng.choice((9, 10, 11, 64, 4096)) + b"\x01"
    elif op == 6:  # a 64-bit value, as a varint, anywhere
      b[i:i] = corpus.varint(rng.choice((1 << 31, 1 << 32, 1 << 62, (1 << 64) - 1, 1 << 40)))
    elif op == 7:  # a range copied from another valid file
      donor = rng.choice(donors)
      s = rng.randrange(len(donor))
      b[i:i] = donor[s : s + rng.randint(1, 64)]
    elif op == 8:  # a range of this file duplicated
      s = rng.randrange(len(b))
      b[i:i] = b[s : s + rng.randint(1, 64)]
    else:  # a 32-bit little-endian field rewritten (zip and HDF5 headers)
      if i + 4 <= len(b):
        struct.pack_into("<I", b, i, rng.choice((0, 0xFFFFFFFF, 0x7FFFFFFF, len(b) * 3, 1 << 20)))
  return bytes(b)


def _seeds(work: pathlib.Path) -> dict[str, list[bytes]]:
  """Valid files per reader."""
  out: dict[str, list[bytes]] = {r: [] for r in READERS}
  for i, kw in enumerate(
    ({}, {"block_size": 64}, {"snappy": True}, {"snappy": True, "block_size": 64})
  ):
    p = work / f"seed{i}" / "ckpt-1"
    corpus.write_checkpoint(p, **kw)
    out["index"].append(pathlib.Path(f"{p}.index").read_bytes())
  deep = [([(i + 1, "c")], [("VARIABLE_VALUE", f"k{i}")]) for i in range(20)] + [([], [])]
  out["graph"] = [corpus.base_graph(), corpus.object_graph(deep)]
  corpus._keras3_h5(work / "k3.weights.h5")
  corpus._keras2_h5(work / "k2.h5")
  out["h5"] = [(work / "k3.weights.h5").read_bytes(), (work / "k2.h5").read_bytes()]
  import zipfile

  for h5 in out["h5"]:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
      out["keras"].append(
        corpus._zip_bytes({"metadata.json": b"{}", "model.weights.h5": h5}, method)
      )
  out["config"] = [
    b"model { ssd { num_classes: 3 image_resizer { fixed_shape_resizer { height: 320 width: 320 } }"
    b' feature_extractor { type: "ssd_mobilenet_v2_fpn_keras" } } }\n'
    b'train_config { fine_tune_checkpoint: "/x/ckpt-0" fine_tune_checkpoint_type: "detection"'
    b" batch_size: 8 num_steps: 100 }\n",
    b'model { faster_rcnn { num_classes: 90 } }\ntrain_config { fine_tune_checkpoint: "a" }\n',
  ]
  return out


def _readers(work: pathlib.Path):
  """reader name -> function(bytes) that reads them (a result or OdGuardError)."""
  from od_guard.checkpoint import keras_files
  from od_guard.checkpoint import object_graph
  from od_guard.checkpoint import paths as checkpoint_path
  from od_guard.checkpoint import tensor_bundle

  scratch = work / "input"

  def via_file(suffix: str, read):
    path = str(scratch) + suffix

    def run(data: bytes):
      with open(path, "wb") as f:
        f.write(data)
      return read(path)

    return run

  def graph(data: bytes):
    object_graph.summarize(data, "fuzz")
    return object_graph.parse(data, "fuzz")

  readers = {
    "index": via_file(".index", tensor_bundle.read_index),
    "graph": graph,
    "h5": via_file(".weights.h5", lambda p: keras_files.read(p, checkpoint_path.KERAS_H5)),
    "keras": via_file(".keras", lambda p: keras_files.read(p, checkpoint_path.KERAS_ARCHIVE)),
  }
  try:
    from od_guard.odapi import config as config_lib

    def config(path: str):
      parsed = config_lib.parse(path)
      return config_lib.read(path, parsed)

    readers["config"] = via_file(".config", config)
  except ImportError as e:  # pragma: no cover
    readers["config"] = None
    harness.progress(f"config reader skipped: {e}")
  return readers


def fuzz(name: str, read, seeds: list[bytes], donors: list[bytes], iterations: int, seed: int,
         time_limit: float) -> dict:  # fmt: skip
  rng = random.Random(f"{seed}-{name}")
  bad: dict[str, int] = {}
  examples: list[str] = []
  hangs = typed = 0
  slowest = 0.0
  start = time.perf_counter()
  for n in range(iterations):
    data = mutate(rng, rng.choice(seeds), donors)
    t = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
      read(data)
    except errors.OdGuardError:
      typed += 1
    except _Hang:
      hangs += 1
    except Exception as e:  # what the fuzzer counts
      tb = traceback.extract_tb(e.__traceback__)
      frame = tb[-1] if tb else None
      where = f"{pathlib.Path(frame.filename).name}:{frame.lineno}" if frame else "?"
      sig = f"{type(e).__name__} at {where}"
      bad[sig] = bad.get(sig, 0) + 1
      if bad[sig] == 1 and len(examples) < 5:
        examples.append(f"{sig}: {str(e)[:160]} (input {len(data)} bytes)")
    finally:
      signal.setitimer(signal.ITIMER_REAL, 0)
    slowest = max(slowest, time.perf_counter() - t)
    if (n + 1) % 10_000 == 0:
      harness.progress(
        f"{name}: {n + 1:,} in {time.perf_counter() - start:.0f} s, "
        f"{sum(bad.values())} non-typed, {hangs} hangs"
      )
  return {
    "iterations": iterations,
    "results": iterations - typed - hangs - sum(bad.values()),
    "typed_errors": typed,
    "non_typed_exceptions": sum(bad.values()),
    "distinct": len(bad),
    "first_tracebacks": examples,
    "hangs": hangs,
    "max_seconds_per_input": round(slowest, 4),
    "seconds": round(time.perf_counter() - start, 1),
  }


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--iterations", type=int, default=100_000)
  p.add_argument("--readers", default=",".join(READERS))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--time-limit", type=float, default=10.0)
  p.add_argument("--memory-limit-mb", type=int, default=6144, help="address-space cap")
  args = p.parse_args()
  signal.signal(signal.SIGALRM, _alarm)
  # Memory a reader fails to bound shows up as a MemoryError (counted) rather
  # than as the kernel killing the fuzzer.
  cap = args.memory_limit_mb << 20
  resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
  # h5py reports damaged files on stderr as well as by raising: keep the
  # progress lines readable.
  try:
    import h5py

    h5py._errors.silence_errors()
  except Exception:  # only quiets HDF5's diagnostics
    pass
  results = {}
  with harness.workdir("od_guard_fuzz_") as work:
    seeds = _seeds(work)
    donors = [d for files in seeds.values() for d in files]
    readers = _readers(work)
    for name in args.readers.split(","):
      read = readers.get(name)
      if read is None:
        results[name] = {"skipped": "the reader does not import in this environment"}
        continue
      harness.progress(f"fuzzing {name} ({args.iterations:,} mutations) ...")
      results[name] = fuzz(
        name, read, seeds[name], donors, args.iterations, args.seed, args.time_limit
      )
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  harness.emit(
    "fuzz",
    {
      "readers": results,
      "non_typed_exceptions": sum(r.get("non_typed_exceptions", 0) for r in results.values()),
      "hangs": sum(r.get("hangs", 0) for r in results.values()),
      "max_rss_mb": round(peak, 1),
      "python": sys.version.split()[0],
      "pid": os.getpid(),
    },
  )


if __name__ == "__main__":
  main()
