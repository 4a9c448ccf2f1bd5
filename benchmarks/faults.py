"""Benchmark: time to a typed error for each remote fault (issue 23, item 1).

moto's S3 server and the GCS emulator run on 127.0.0.1 behind the fault-injecting
proxy of tests/support/fault_proxy.py, holding the tiny TF checkpoint of
tests/data/tiny_checkpoints and a --megabytes object of random bytes. For each
store, measured round by round (medians):

  * the whole `od-guard` process to its typed error, for: a stalled endpoint
    (OD_GUARD_REMOTE_TIMEOUT=--bound; target <= bound + 2 s), connections reset
    after 1,000 bytes of every answer (the issue's proxy), bodies truncated
    (FIN) in their headers, 503 SlowDown (S3) / 429 (GCS) on every request,
    and (S3) credentials rejected mid-run; `stall_after_request_s` is the stall
    counted from the proxy seeing the request (the interpreter's start aside);
  * recovery: the object read whole in 4 MB reads (od_guard's RemoteFile, in this
    process) clean and with its first 3 answers reset after 1 MB (target <= 2x
    clean), and `od-guard verify` on the checkpoint clean and with 3 resets.

Prints one JSON line. Run with the plain environment's Python (s3fs, gcsfs, moto,
the emulator).

Usage: .venv/plain/bin/python benchmarks/faults.py [--rounds 3] [--bound 5] [--megabytes 64]
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
import urllib.request

import harness
from support import fault_proxy
from support import object_store

BUCKET = "bench"
TINY = harness.REPO / "tests" / "data" / "tiny_checkpoints" / "detector"
SHARD = "ckpt-1.data-00000-of-00001"


def _data_get(kind: str, key: str) -> str:
  if kind == "s3":
    return rf"^GET /{BUCKET}/{re.escape(key)}"
  return rf"^GET /download/storage/v1/b/{BUCKET}/o/{re.escape(key)}"


def _run(server, proxy, bound: float, *args: str) -> tuple[float, str, int]:
  """`od-guard ARGS --json` through `proxy`: (wall seconds, error type or '', exit code)."""
  env = {
    **object_store.client_env(server),
    **proxy.env(server.kind),
    "OD_GUARD_REMOTE_TIMEOUT": f"{bound:g}",
  }
  wall, _, out = harness.run_process(
    [sys.executable, "-m", "od_guard", *args], ok=(0, 1, 2), env=env
  )
  try:
    data = json.loads(out)
  except json.JSONDecodeError:
    data = {}
  return wall, str(data.get("error", "")), 0 if "error" not in data else 2


def _moto_auth(server, count: str) -> None:
  request = urllib.request.Request(
    f"{server.endpoint}/moto-api/reset-auth",
    data=count.encode(),
    headers={"Content-Type": "text/plain"},
    method="POST",
  )
  urllib.request.urlopen(request, timeout=10).close()


def _read_whole(uri: str) -> float:
  from od_guard.checkpoint import remote

  start = time.perf_counter()
  with remote.open_binary(uri) as f:
    while f.read(4 << 20):
      pass
  return time.perf_counter() - start


def _faults(kind: str) -> dict[str, tuple]:
  """name -> (Fault, command, the typed error expected) for `kind`'s store."""
  ckpt = "tiny/detector/ckpt-1"
  status = 503 if kind == "s3" else 429
  out = {
    "stall": (fault_proxy.Fault(fault_proxy.STALL), "inspect", "StorageTimeoutError"),
    "reset_every_answer": (
      fault_proxy.Fault(
        fault_proxy.RESET, match=_data_get(kind, f"tiny/detector/{SHARD}"), after=1000
      ),
      "verify",
      "InterruptedReadError",
    ),
    "truncated_every_answer": (
      fault_proxy.Fault(fault_proxy.TRUNCATE, match=_data_get(kind, f"{ckpt}.index"), after=300),
      "inspect",
      "InterruptedReadError",
    ),
    f"throttled_{status}": (
      fault_proxy.Fault(fault_proxy.THROTTLE, status=status),
      "inspect",
      "ThrottledError",
    ),
  }
  if kind == "s3":
    out["credentials_rejected_mid_run"] = (fault_proxy.Fault(), "verify", "CredentialsExpiredError")
  return out


def _bench_store(server, args, results: dict) -> None:
  kind = server.kind
  uri = server.url(BUCKET, "tiny/detector/ckpt-1")
  times: dict[str, list[float]] = {}
  after_request: list[float] = []
  errors_seen: dict[str, set] = {}
  for name, (fault, command, expected) in _faults(kind).items():
    hook = None
    if name == "credentials_rejected_mid_run":
      switched: list[str] = []

      def hook(line, switched=switched):
        if line.startswith("GET ") and SHARD in line and not switched:
          switched.append(line)
          _moto_auth(server, "0")

    for r in range(args.rounds):
      with fault_proxy.FaultProxy(server.endpoint, fault, lifetime=120, on_request=hook) as p:
        try:
          wall, error, _ = _run(server, p, args.bound, command, "--json", uri)
        finally:
          if hook is not None:
            _moto_auth(server, "inf")
            switched.clear()
        if name == "stall" and p.log:
          after_request.append(time.monotonic() - p.log[0][0])
      times.setdefault(name, []).append(wall)
      errors_seen.setdefault(name, set()).add(error)
      harness.progress(f"{kind} {name} round {r + 1}: {wall:.2f} s -> {error or 'no error'}")
      if error != expected:
        raise SystemExit(f"{kind} {name}: expected {expected}, got {error or 'no error'}")
  med = harness.medians(times)
  for name, seconds in med.items():
    results[f"{kind}_{name}_s"] = round(seconds, 3)
  results[f"{kind}_stall_after_request_s"] = round(
    sorted(after_request)[len(after_request) // 2], 3
  )
  results[f"{kind}_stall_within_target"] = med["stall"] <= args.bound + 2
  results[f"{kind}_stall_after_request_within_target"] = (
    results[f"{kind}_stall_after_request_s"] <= args.bound + 2
  )

  # Recovery: verify and a whole-object read, clean and with 3 resets.
  clean_fault = fault_proxy.Fault()
  verify_fault = fault_proxy.Fault(
    fault_proxy.RESET, match=_data_get(kind, f"tiny/detector/{SHARD}"), times=3, after=20_000
  )
  walls: dict[str, list[float]] = {"clean": [], "reset": []}
  for _ in range(args.rounds):
    for label, fault in (("clean", clean_fault), ("reset", verify_fault)):
      with fault_proxy.FaultProxy(server.endpoint, fault, lifetime=120) as p:
        wall, error, _ = _run(server, p, args.bound, "verify", "--json", uri)
      if error:
        raise SystemExit(f"{kind} verify ({label}): {error}")
      walls[label].append(wall)
  med = harness.medians(walls)
  results[f"{kind}_verify_clean_s"] = round(med["clean"], 3)
  results[f"{kind}_verify_3_resets_s"] = round(med["reset"], 3)
  results[f"{kind}_verify_resets_over_clean"] = round(med["reset"] / med["clean"], 2)


def _bench_object_reads(server, args, results: dict) -> None:
  """The --megabytes object read whole in this process, clean and with 3 resets."""
  from od_guard.checkpoint import remote

  kind = server.kind
  key = "random.bin"
  uri = server.url(BUCKET, key)
  proxy = fault_proxy.FaultProxy(server.endpoint, lifetime=600).start()
  saved = dict(os.environ)
  try:
    os.environ.update({**object_store.client_env(server), **proxy.env(kind)})
    remote.configure(None)
    remote._check_bucket.cache_clear()
    reset = fault_proxy.Fault(fault_proxy.RESET, match=_data_get(kind, key), times=3, after=1 << 20)
    secs: dict[str, list[float]] = {"clean": [], "reset": []}
    for r in range(args.rounds):
      for label, fault in (("clean", fault_proxy.Fault()), ("reset", reset)):
        proxy.set_fault(fault)
        secs[label].append(_read_whole(uri))
        if label == "reset" and proxy.faulted != 3:
          raise SystemExit(f"{kind}: expected 3 resets, the proxy made {proxy.faulted}")
      harness.progress(
        f"{kind} read {args.megabytes:g} MB round {r + 1}: clean {secs['clean'][-1]:.2f} s, "
        f"3 resets {secs['reset'][-1]:.2f} s"
      )
  finally:
    proxy.stop()
    os.environ.clear()
    os.environ.update(saved)
    remote.filesystem.cache_clear()
  med = harness.medians(secs)
  results[f"{kind}_read_{args.megabytes:g}mb_clean_s"] = round(med["clean"], 3)
  results[f"{kind}_read_{args.megabytes:g}mb_3_resets_s"] = round(med["reset"], 3)
  ratio = med["reset"] / med["clean"]
  results[f"{kind}_read_resets_over_clean"] = round(ratio, 2)
  results[f"{kind}_read_resets_within_target"] = ratio <= 2.0


def main() -> None:
  parser = harness.parser(__doc__, rounds=3)
  parser.add_argument("--bound", type=float, default=5.0, help="OD_GUARD_REMOTE_TIMEOUT (s)")
  parser.add_argument("--megabytes", type=float, default=64.0)
  parser.add_argument("--stores", default="s3,gcs")
  args = parser.parse_args()
  if importlib.util.find_spec("s3fs") is None:
    raise SystemExit("run with the plain environment's Python (s3fs, moto): .venv/plain/bin/python")
  results: dict = {"rounds": args.rounds, "bound_s": args.bound}
  payload = os.urandom(int(args.megabytes * 1e6))
  for kind in args.stores.split(","):
    server = object_store.start_s3() if kind == "s3" else object_store.start_gcs()
    try:
      server.make_bucket(BUCKET)
      server.upload(str(TINY), BUCKET, "tiny/detector")
      server.filesystem().pipe_file(f"{BUCKET}/random.bin", payload)
      _bench_store(server, args, results)
      _bench_object_reads(server, args, results)
    finally:
      server.stop()
  harness.emit("faults", results)


if __name__ == "__main__":
  main()
