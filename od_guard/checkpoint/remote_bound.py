"""The bound on waiting for object storage: its setting, and the watcher that holds
every request to it.

A request waits at most `settings().timeout` seconds (``--remote_timeout``,
``OD_GUARD_REMOTE_TIMEOUT``, default `DEFAULT_TIMEOUT`) for an answer, or, while a
body streams, for its next byte; after `NOTICE_AFTER` seconds one line on stderr
says what is being waited for; then `StorageTimeoutError` (`watch`).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import os
import sys
import time

from od_guard import errors
from od_guard.checkpoint.remote_errors import StorageTimeoutError
from od_guard.checkpoint.remote_errors import scheme

# The bound: seconds a request waits for an answer (or, while a body streams, for
# its next byte). The CLI's flag and the environment variable that set it.
DEFAULT_TIMEOUT = 20.0
MAX_TIMEOUT = 3600.0
TIMEOUT_FLAG = "--remote_timeout"
TIMEOUT_ENV = "OD_GUARD_REMOTE_TIMEOUT"
NOTICE_AFTER = 5.0  # seconds of waiting before the line on stderr
PIECE = 256 << 10  # bytes taken from a response body at a time
_POLL = 0.05  # seconds between the watcher's checks


@dataclasses.dataclass(frozen=True)
class Settings:
  """How long od_guard waits on object storage.

  Attributes:
    timeout: seconds a request waits for an answer, or a streaming body for its
      next byte, before `StorageTimeoutError`.
    source: where the value came from (TIMEOUT_FLAG, TIMEOUT_ENV or "the default").
  """

  timeout: float = DEFAULT_TIMEOUT
  source: str = "the default"


_configured: Settings | None = None


def _parse_timeout(value, source: str) -> float:
  try:
    seconds = float(value)
  except (TypeError, ValueError):
    seconds = float("nan")
  if not 0 < seconds <= MAX_TIMEOUT:  # also NaN
    raise errors.UsageError(
      f"{source} must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}.",
      received=f"{source}={value}",
      fix=f"Set {source} to how long a request to object storage may go unanswered, "
      f"e.g. {source}{' ' if source.startswith('--') else '='}{DEFAULT_TIMEOUT:g}.",
    )
  return seconds


def set_bound(timeout: float | str | None, source: str) -> None:
  """`remote.configure`'s setting, without renewing the clients that follow it.

  Raises:
    UsageError: `timeout` is not a number of seconds in (0, MAX_TIMEOUT].
  """
  global _configured
  _configured = None if timeout is None else Settings(_parse_timeout(timeout, source), source)


def settings() -> Settings:
  """The bound in force: configure()'s, else OD_GUARD_REMOTE_TIMEOUT's, else the default.

  Raises:
    UsageError: OD_GUARD_REMOTE_TIMEOUT is not a number of seconds.
  """
  if _configured is not None:
    return _configured
  raw = os.environ.get(TIMEOUT_ENV, "").strip()
  if raw:
    return Settings(_parse_timeout(raw, TIMEOUT_ENV), TIMEOUT_ENV)
  return Settings()


def _knob(bound: Settings) -> str:
  if bound.source == "the default":
    return f"od_guard's default; {TIMEOUT_FLAG} or {TIMEOUT_ENV} sets it"
  return f"set by {bound.source}"


def _notice(bound: Settings, what: str, path: str, where: str, seen: int) -> None:
  """The one line on stderr after NOTICE_AFTER seconds of waiting."""
  if seen:
    line = (
      f"still reading {what} of {path} from {where} after {NOTICE_AFTER:g} s "
      f"({seen:,} bytes so far); giving up after {bound.timeout:g} s without a byte "
      f"({_knob(bound)})."
    )
  else:
    line = (
      f"waiting for {what} of {path} from {where}: no answer after {NOTICE_AFTER:g} s; "
      f"giving up after {bound.timeout:g} s without one ({_knob(bound)})."
    )
  print(f"od-guard: {line}", file=sys.stderr, flush=True)


def watch(future, cancel, *, what: str, path: str, where: Callable[[], str], progress=None):
  """Waits for `future` (a request in flight) and returns its result: at most the
  bound without an answer, where any change of `progress()` (bytes received) counts
  as one. One line on stderr after NOTICE_AFTER seconds says what is waited for.

  Args:
    future: the request in flight (a concurrent.futures.Future).
    cancel: called when the request is given up on.
    what: what the request waits for ("the metadata", "bytes 0..100").
    path: the object asked for.
    where: says where the request went (the endpoint), when a message needs it.
    progress: the bytes received so far, where a body streams.

  Raises:
    StorageTimeoutError: nothing came for the bound (the request is cancelled).
  """
  bound = settings()
  protocol = scheme(path)
  start = last = time.monotonic()
  seen = progress() if progress else 0
  told, said = False, ""
  try:
    while True:
      try:
        return future.result(timeout=_POLL)
      except TimeoutError:  # concurrent.futures.TimeoutError
        if future.done():  # the request's own TimeoutError
          raise
      now = time.monotonic()
      n = progress() if progress else 0
      if n != seen:
        seen, last = n, now
      if not told and now - start >= NOTICE_AFTER:
        told, said = True, where()
        _notice(bound, what, path, said, seen)
      if now - last >= bound.timeout:
        raise StorageTimeoutError(
          f"Gave up on {path}: the {protocol}:// endpoint sent nothing for "
          f"{bound.timeout:g} s while od_guard waited for {what}.",
          received=f"{path}; endpoint {said or where()}; {seen:,} bytes of the answer "
          f"received; bound {bound.timeout:g} s ({bound.source})",
          fix="Check the endpoint: it takes connections but does not answer (a stuck "
          "server or proxy, or a network that drops packets). If the storage is only "
          f"slow, raise the bound: {TIMEOUT_FLAG} SECONDS or {TIMEOUT_ENV}=SECONDS.",
        )
  finally:
    if not future.done():
      cancel()


def call_watched(path: str, what: str, fn, *args):
  """Calls `fn(*args)` (a blocking storage call: TensorFlow's gfile) on a thread of
  its own, watched like every fsspec request: at most the bound, a line on stderr
  after NOTICE_AFTER seconds. A call given up on is left to finish (it cannot be
  cancelled); its thread does not keep the process alive.

  Raises:
    StorageTimeoutError: no answer within the bound.
  """
  import concurrent.futures
  import threading

  future: concurrent.futures.Future = concurrent.futures.Future()

  def run() -> None:
    if not future.set_running_or_notify_cancel():
      return
    try:
      future.set_result(fn(*args))
    except BaseException as e:  # handed to the waiting thread
      future.set_exception(e)

  threading.Thread(target=run, name="od_guard-storage", daemon=True).start()
  return watch(future, lambda: None, what=what, path=path, where=lambda: "TensorFlow's gfile")


async def drain(read, need: int, buf: bytearray) -> None:
  """Appends up to `need` bytes of a streaming body to `buf`, `read(n)` (a coroutine)
  at most PIECE bytes at a time, so that `watch` sees each piece arrive. Stops early
  where the body ends."""
  got = 0
  while got < need:
    chunk = await read(min(PIECE, need - got))
    if not chunk:
      return
    buf += chunk
    got += len(chunk)
