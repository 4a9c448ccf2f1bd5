"""Consensus before step one: under MultiWorkerMirroredStrategy every worker
runs its own preflight, then the workers exchange a small vote (what each read and decided)
through a collective of the strategy itself, and all of them stop if any
worker failed or if they read different checkpoints.

Without it, a checkpoint that exists on the chief's disk only fails on the
worker that cannot see it, and the healthy workers stop later, in the first
collective that waits for the missing one (the model build's broadcast of
initial values), with an error that names the wrong cause.

    mine = consensus.Vote.of(strategy, consensus.VERDICT, checkpoint=prefix, decision=decision)
    consensus.agree(strategy, mine, timeout=300)  # raises WorkersDisagreeError on every worker
    ...
    except (consensus.WorkersDisagreeError, consensus.ConsensusTimeoutError) as e:
      report = pipeline.amend(report, [consensus.finding(e)], first=True)

A vote travels as a fixed-size int32 tensor holding its JSON bytes
(`ReplicaContext.all_gather`, with the exchange's timeout); a worker that
never arrives is caught by the collective's timeout and, as a backstop, by a
watchdog that ends the process (`watchdog`). TensorFlow is imported inside
the functions that need it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import sys
from typing import Any

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.restore import findings as findings_lib

SIZE = 4096  # bytes of JSON per vote
STATIC = "static"  # the first exchange: config and checkpoint metadata
VERDICT = "verdict"  # the second: the full preflight, before step one
READ = "read"  # the Keras guard's first: the checkpoint as read
DEFAULT_TIMEOUT = 300.0
JOIN = "joining the cluster"
FIX_SHARED = (
  "Every worker must read the same checkpoint files: put fine_tune_checkpoint on storage that "
  "every worker mounts at the same path (a shared file system, gs://, s3://), or copy the "
  "identical files to that path on every host; then start all workers again."
)
FIX_JOIN = (
  "Start every worker of the cluster (TF_CONFIG's cluster lists who must come); a worker "
  "that needs longer to reach the preflight's verdict can be given more time with "
  "--guard_consensus_timeout (seconds)."
)


# Failures that mean "this worker cannot see the files the others can".
_NOT_VISIBLE = frozenset(
  {"checkpoint_not_found", "data_shard_missing", "CheckpointNotFoundError", "UnreadableFileError"}
)


class WorkersDisagreeError(errors.OdGuardError):
  """Some worker's preflight failed, or the workers read different checkpoints;
  every worker raises it, with the same message."""

  exit_code = 1


class ConsensusTimeoutError(errors.OdGuardError):
  """A worker did not reach the verdict exchange in time."""

  exit_code = 1


@dataclasses.dataclass(frozen=True)
class Vote:
  """What one worker saw, as the others get it.

  Attributes:
    worker: e.g. 'worker 1' or 'chief 0'.
    host: the worker's host name.
    stage: 'static' (config and checkpoint metadata) or 'verdict' (the full
      preflight, before step one).
    decision: 'pass', 'warn', 'fail', or 'error' (the preflight raised).
    codes: the codes of its error findings.
    summary: its first reason, in words.
    checkpoint: the checkpoint prefix it read ('' when none).
    digest: sha256 of that checkpoint's index file ('' when unreadable).
  """

  worker: str
  host: str
  stage: str
  decision: str
  codes: tuple[str, ...] = ()
  summary: str = ""
  checkpoint: str = ""
  digest: str = ""

  @property
  def failed(self) -> bool:
    return self.decision in ("fail", "error")

  @classmethod
  def of(
    cls,
    strategy: Any,
    stage: str,
    *,
    checkpoint: str = "",
    decision: str = "pass",
    found: Sequence[findings_lib.Finding] = (),
    error: errors.OdGuardError | None = None,
  ) -> Vote:
    """This worker's vote: from the error that stopped its preflight, or from
    its decision and the findings behind it (their errors name the codes, the
    first one's title and the first clause of its detail the summary).

    Args:
      strategy: the MultiWorkerMirroredStrategy (names the worker).
      stage: STATIC (or READ) or VERDICT.
      checkpoint: the checkpoint prefix this worker read ('' when none).
      decision: 'pass', 'warn' or 'fail'.
      found: the findings behind the decision (only errors are carried).
      error: the error that stopped the preflight (decision 'error').
    """
    common = {
      "worker": worker_name(strategy),
      "host": socket.gethostname(),
      "stage": stage,
      "checkpoint": str(checkpoint),
    }
    if error is not None:
      return cls(decision="error", codes=(type(error).__name__,), summary=error.what, **common)
    errs = [f for f in found if f.severity == findings_lib.ERROR]
    summary = errs[0].title if errs else ""
    if errs and errs[0].detail:  # its first clause: e.g. which file is missing
      summary += f" ({errs[0].detail.splitlines()[0].split('; ')[0][:300]})"
    return cls(
      decision=decision,
      codes=tuple(f.code for f in errs),
      summary=summary,
      digest=index_digest(checkpoint),
      **common,
    )

  def encode(self) -> bytes:
    """The vote's JSON, shortened to fit `SIZE` bytes."""
    vote = self
    for limit in (600, 200, 60):
      data = json.dumps(dataclasses.asdict(vote), ensure_ascii=True).encode()
      if len(data) <= SIZE:
        return data
      vote = dataclasses.replace(
        vote,
        summary=vote.summary[:limit],
        checkpoint=_clip(vote.checkpoint, limit),
        codes=tuple(c[:60] for c in vote.codes[:20]),
      )
    return json.dumps(dataclasses.asdict(vote), ensure_ascii=True).encode()[:SIZE]

  @classmethod
  def decode(cls, data: bytes) -> Vote:
    d = json.loads(data.rstrip(b"\0").decode())
    d["codes"] = tuple(d.get("codes", ()))
    return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

  def line(self) -> str:
    """One line of the shared message: who, what it decided, what it read."""
    out = f"{self.worker} ({self.host}): {self.decision.upper()}"
    if self.failed:
      out += f" [{', '.join(self.codes) or 'error'}] {self.summary}".rstrip()
    if self.digest:
      out += f"; read {self.checkpoint} (index sha256 {self.digest[:12]})"
    elif not self.failed:
      out += f"; read {self.checkpoint or 'no checkpoint'}"
    return out


def _clip(text: str, limit: int) -> str:
  return text if len(text) <= limit else "..." + text[-limit:]


def index_digest(prefix: str | None) -> str:
  """sha256 of a checkpoint's index file ('<prefix>.index', or a Keras file
  itself); '' when it cannot be read."""
  if not prefix:
    return ""
  for path in (prefix + ".index", prefix):
    try:
      if not fileio.exists(path) or fileio.isdir(path):
        continue
      h = hashlib.sha256()
      with fileio.open_binary(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          h.update(block)
      return h.hexdigest()
    except (OSError, errors.OdGuardError):
      return ""
  return ""


def is_multi_worker(strategy: Any) -> bool:
  """Whether `strategy` spans more than one worker (MultiWorkerMirroredStrategy
  with a cluster)."""
  extended = getattr(strategy, "extended", None)
  if extended is None or "CollectiveAllReduce" not in type(strategy).__name__:
    return False
  cluster = getattr(strategy, "cluster_resolver", None)
  try:
    spec = cluster.cluster_spec().as_dict() if cluster is not None else {}
  except (AttributeError, ValueError):
    return False
  return sum(len(v) if isinstance(v, list) else len(dict(v)) for v in spec.values()) > 1


def worker_name(strategy: Any = None) -> str:
  """E.g. 'worker 1': the strategy's task, or TF_CONFIG's."""
  cluster = getattr(strategy, "cluster_resolver", None)
  task_type = getattr(cluster, "task_type", None)
  task_id = getattr(cluster, "task_id", None)
  if task_type is None:
    task = _tf_config().get("task", {}) or {}
    task_type, task_id = task.get("type", "worker"), task.get("index", 0)
  return f"{task_type} {task_id}"


def _tf_config() -> dict:
  try:
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
  except ValueError:
    return {}
  return config if isinstance(config, dict) else {}


def peers() -> dict[str, str]:
  """TF_CONFIG's cluster: 'worker 1' -> '127.0.0.1:2223', this task excluded."""
  config = _tf_config()
  me = worker_name()
  out = {}
  for job, addresses in (config.get("cluster") or {}).items():
    if isinstance(addresses, dict):
      items = sorted((int(k), v) for k, v in addresses.items())
    else:
      items = list(enumerate(addresses or ()))
    for i, address in items:
      name = f"{job} {i}"
      if name != me and job != "evaluator":
        out[name] = str(address)
  return out


def unreachable(timeout: float = 1.0) -> dict[str, str]:
  """The peers whose server port does not accept a connection (not started,
  or gone), with the address tried."""
  out = {}
  for name, address in peers().items():
    host, _, port = address.rpartition(":")
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
        pass
    except (OSError, ValueError):
      out[name] = address
  return out


def _missing_text(known: Sequence[str] = ()) -> tuple[str, str]:
  """(who is missing, in words; the addresses tried)."""
  gone = unreachable()
  missing = [n for n in gone if n not in known]
  if missing:
    return (
      ", ".join(missing),
      "; ".join(f"{n}: nothing listens at {gone[n]}" for n in missing),
    )
  others = [n for n in peers() if n not in known]
  return (
    "one of " + ", ".join(others) if others else "another worker",
    "every peer's port answers, but not every worker reached the exchange "
    "(still busy, or stopped in its preflight)",
  )


def timeout_error(stage: str, seconds: float, known: Sequence[str] = ()) -> ConsensusTimeoutError:
  who, received = _missing_text(known)
  waited = (
    "did not join the cluster"
    if stage == JOIN
    else f"did not reach od_guard's verdict exchange ({stage})"
  )
  return ConsensusTimeoutError(
    f"{who} {waited} within {seconds:g} s; {worker_name()} stops before step one "
    "(od_guard's verdict exchange needs every worker).",
    received=received,
    fix=FIX_JOIN,
  )


def _stderr(text: str) -> None:
  try:
    sys.stdout.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
  except (OSError, ValueError):
    pass


@contextlib.contextmanager
def watchdog(seconds: float, stage: str, known: Sequence[str] = ()) -> Iterator[None]:
  """Ends this process if the block has not finished after `seconds`, printing
  the `ConsensusTimeoutError` of `stage` first: the backstop for waits that
  TensorFlow does not bound (joining the cluster blocks in C++, holding the
  GIL and ignoring SIGTERM, so no thread or signal handler of this process
  could act). The watchdog is a small child process; it kills this one with
  SIGKILL, the only signal such a wait obeys."""
  import subprocess

  child = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "from od_guard.restore import consensus; consensus._watchdog_main()",
      str(os.getpid()),
      repr(float(seconds)),
      stage,
      json.dumps(list(known)),
    ],
    stdin=subprocess.PIPE,
    env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
  )
  try:
    yield
  finally:
    with contextlib.suppress(OSError):
      child.stdin.close()  # the child's cue: the block finished
    child.wait()


def _watchdog_main() -> None:
  """The watchdog child: waits `seconds` for its stdin to close; if it does
  not, prints the timeout error to the shared stderr and kills the parent."""
  import select
  import signal

  parent, seconds, stage, known = (
    int(sys.argv[1]),
    float(sys.argv[2]),
    sys.argv[3],
    json.loads(sys.argv[4]),
  )
  ready, _, _ = select.select([sys.stdin], [], [], seconds)
  if ready:
    return
  e = timeout_error(stage, seconds, known)
  _stderr(f"od_guard: error: {type(e).__name__}: {e.format()}")
  with contextlib.suppress(OSError):
    os.kill(parent, signal.SIGKILL)


def exchange(strategy: Any, mine: Vote, timeout: float = DEFAULT_TIMEOUT) -> list[Vote]:
  """Gathers every worker's vote through `strategy`'s own collective.

  Returns:
    One vote per worker, sorted by worker name.

  Raises:
    ConsensusTimeoutError: some worker did not arrive within `timeout`.
  """
  import numpy as np
  import tensorflow as tf

  data = mine.encode()
  row = np.zeros([SIZE], np.int32)
  row[: len(data)] = np.frombuffer(data, np.uint8)
  options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=float(timeout))

  def gather():
    value = tf.constant(row)[None]
    return tf.distribute.get_replica_context().all_gather(value, axis=0, options=options)

  try:
    with watchdog(timeout + 30.0, mine.stage):
      out = strategy.run(gather)
      rows = strategy.experimental_local_results(out)[0].numpy()
  except tf.errors.OpError as e:
    raise timeout_error(mine.stage, timeout) from e
  votes: dict[str, Vote] = {}
  for r in rows:
    vote = Vote.decode(bytes(np.asarray(r, np.uint8)))
    votes.setdefault(vote.worker, vote)
  return sorted(votes.values(), key=_order)


def _order(vote: Vote) -> tuple:
  job, _, index = vote.worker.partition(" ")
  return (job != "chief", job, int(index) if index.isdigit() else 0)


def check(votes: Sequence[Vote]) -> None:
  """Raises the same `WorkersDisagreeError` on every worker if any vote
  failed, or if they read different checkpoints."""
  failed = [r for r in votes if r.failed]
  digests = {r.digest for r in votes if r.digest}
  stages = {r.stage for r in votes}
  if not failed and len(digests) <= 1 and len(stages) <= 1:
    return
  lines = "\n".join("  " + r.line() for r in votes)
  if failed:
    who = ", ".join(r.worker for r in failed)
    what = (
      f"The preflight failed on {who} of {len(votes)} workers; no worker trains "
      "(every worker stops before step one)."
    )
    codes = {c for r in failed for c in r.codes}
    readable = [r for r in votes if not r.failed]
    if readable and codes & _NOT_VISIBLE:
      fix = (
        f"{who} cannot read the checkpoint that "
        + ", ".join(r.worker for r in readable)
        + " can: it is not on storage every worker sees. "
        + FIX_SHARED
      )
    elif readable:
      fix = f"Fix what {who} reports (above), on every host. " + FIX_SHARED
    else:
      fix = "Fix what the workers report (above); each one's report says more."
  elif len(digests) > 1:
    groups: dict[str, list[str]] = {}
    for r in votes:
      groups.setdefault(r.digest or "unreadable", []).append(r.worker)
    what = (
      "The workers read different checkpoints at the same path (the index files differ: "
      + "; ".join(f"{', '.join(w)}: sha256 {d[:12]}" for d, w in groups.items())
      + "); no worker trains (every worker stops before step one)."
    )
    fix = FIX_SHARED
  else:
    what = (
      "The workers reached different stages of the preflight ("
      + ", ".join(sorted(stages))
      + "); no worker trains."
    )
    fix = "Start every worker with the same od_guard version, flags and config."
  raise WorkersDisagreeError(what, received="what each worker saw:\n" + lines, fix=fix)


def agree(strategy: Any, mine: Vote, timeout: float = DEFAULT_TIMEOUT) -> list[Vote]:
  """`exchange`, then `check`; returns the votes when every worker passed
  with the same checkpoint."""
  votes = exchange(strategy, mine, timeout)
  check(votes)
  return votes


def finding(
  error: WorkersDisagreeError | ConsensusTimeoutError, *, stock_outcome: str = ""
) -> findings_lib.Finding:
  """The workers' disagreement (or a worker that never came) as a finding."""
  return findings_lib.Finding(
    "workers_disagree" if isinstance(error, WorkersDisagreeError) else "workers_missing",
    findings_lib.ERROR,
    error.what,
    detail=error.received.strip(),
    fix=error.fix,
    stock_outcome=stock_outcome,
  )
