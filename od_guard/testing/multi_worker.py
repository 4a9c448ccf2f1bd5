"""Multi-worker runs on one machine, for tests and demos: free ports on
127.0.0.1, a TF_CONFIG per worker, worker processes started together.

    cluster = multi_worker.cluster(2)
    procs = [multi_worker.start(cmd, cluster, i, env=env) for i in range(2)]
    results = multi_worker.wait(procs, timeout=300)

No TensorFlow is imported here; the workers import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import json
import os
import socket
import subprocess
import time


def free_ports(n: int) -> list[int]:
  """`n` distinct TCP ports free on 127.0.0.1 (bound together, then released)."""
  sockets = []
  try:
    for _ in range(n):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("127.0.0.1", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def cluster(num_workers: int) -> list[str]:
  """Addresses of a local cluster of `num_workers` workers."""
  return [f"127.0.0.1:{p}" for p in free_ports(num_workers)]


def tf_config(addresses: Sequence[str], index: int) -> str:
  """The TF_CONFIG of worker `index` of `addresses` (no chief: worker 0 leads)."""
  return json.dumps(
    {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}
  )


@dataclasses.dataclass
class Result:
  """A finished worker: its exit code, output and wall time."""

  index: int
  returncode: int | None
  stdout: str
  stderr: str
  seconds: float

  @property
  def output(self) -> str:
    return self.stdout + self.stderr


@dataclasses.dataclass
class Worker:
  index: int
  process: subprocess.Popen
  started: float
  out_path: str
  err_path: str


def start(
  command: Sequence[str],
  addresses: Sequence[str],
  index: int,
  *,
  env: Mapping[str, str] | None = None,
  log_dir: str,
) -> Worker:
  """Starts worker `index` of `addresses` running `command`; its output goes to
  files in `log_dir` (pipes could fill up and block a worker)."""
  os.makedirs(log_dir, exist_ok=True)
  out_path = os.path.join(log_dir, f"worker{index}.out")
  err_path = os.path.join(log_dir, f"worker{index}.err")
  environment = dict(os.environ if env is None else env)
  environment["TF_CONFIG"] = tf_config(addresses, index)
  with open(out_path, "wb") as out, open(err_path, "wb") as err:
    process = subprocess.Popen(
      list(command), stdout=out, stderr=err, env=environment, start_new_session=True
    )
  return Worker(index, process, time.monotonic(), out_path, err_path)


def wait(workers: Sequence[Worker], timeout: float) -> list[Result]:
  """Waits for every worker; one still running after `timeout` seconds is
  killed (its returncode is then None). Each result's `seconds` is that
  worker's own wall time."""
  deadline = time.monotonic() + timeout
  ended: dict[int, tuple[int | None, float]] = {}  # position -> (returncode, seconds)
  while len(ended) < len(workers):
    for i, w in enumerate(workers):
      if i not in ended and w.process.poll() is not None:
        ended[i] = (w.process.returncode, time.monotonic() - w.started)
    if time.monotonic() > deadline:
      for i, w in enumerate(workers):
        if i not in ended:
          w.process.kill()
          w.process.wait()
          ended[i] = (None, time.monotonic() - w.started)
    time.sleep(0.2)
  results = []
  for i, w in enumerate(workers):
    with open(w.out_path, encoding="utf-8", errors="replace") as f:
      stdout = f.read()
    with open(w.err_path, encoding="utf-8", errors="replace") as f:
      stderr = f.read()
    returncode, seconds = ended[i]
    results.append(Result(w.index, returncode, stdout, stderr, seconds))
  return results
