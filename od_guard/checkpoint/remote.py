"""Object storage without TensorFlow: ``gs://``, ``s3://`` and any fsspec protocol.

`fileio` hands a URI here when fsspec has an implementation of its scheme
installed (`serves`): gcsfs for ``gs://`` (`pip install od_guard[gcs]`), s3fs
for ``s3://`` (`pip install od_guard[s3]`), or any other fsspec protocol.
Files are opened for ranged reads only: what a reader asks for (an index's
footer and blocks, the object graph's bytes in a data shard, the tensors
`verify` streams) is fetched, with a small read-ahead, never the whole object.

Credentials and endpoints are found the way those libraries find them:
environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``,
``STORAGE_EMULATOR_HOST``), their config files, fsspec's configuration
(``FSSPEC_S3_ENDPOINT_URL`` style variables, ``~/.config/fsspec``). od_guard
only adds bounds, so that a dead or flaky endpoint fails in seconds instead of
hanging a CI check (docs/faults.md lists each fault and its bound):

* a request waits at most `settings().timeout` seconds (``--remote_timeout``,
  ``OD_GUARD_REMOTE_TIMEOUT``, default `DEFAULT_TIMEOUT`) for an answer, or, while a
  body streams, for its next byte; after `NOTICE_AFTER` seconds one line on stderr
  says what is being waited for; then `StorageTimeoutError`;
* a read cut short (connection reset, a body shorter than its Content-Length) is
  resumed from the byte reached, at most `RESUMES` times per read, then
  `InterruptedReadError` names the object and the offset: a read returns every
  byte asked for (up to the object's end) or raises, so a cut connection never
  looks like a truncated checkpoint;
* throttling (HTTP 503 SlowDown, 429) is retried with jittered exponential
  backoff, `THROTTLE_ATTEMPTS` attempts, then `ThrottledError` names it;
* credentials rejected after the service accepted them in this process are
  `CredentialsExpiredError`.

od_guard does these retries itself: botocore's and gcsfs's own retries are turned
off where the user did not configure them. Every failure is a typed error saying
what to do.

This module is the API (what `fileio`, the CLI and the doctor use); the parts live
beside it: `remote_errors` (the typed errors, a client's exception as one),
`remote_bound` (the bound, the watcher and its line on stderr), `remote_fs` (the
fsspec filesystem, its endpoint and reachability) with `remote_s3` and `remote_gcs`
(what differs per service), `remote_retry` (classifying failures, backoff, retried
requests) and `remote_file` (`RemoteFile`, the resumed ranged reader).
"""

from __future__ import annotations

import functools
from typing import BinaryIO

from od_guard import errors
from od_guard.checkpoint import remote_bound
from od_guard.checkpoint import remote_fs
from od_guard.checkpoint import remote_retry
from od_guard.checkpoint import remote_s3
from od_guard.checkpoint.remote_bound import DEFAULT_TIMEOUT
from od_guard.checkpoint.remote_bound import MAX_TIMEOUT
from od_guard.checkpoint.remote_bound import NOTICE_AFTER
from od_guard.checkpoint.remote_bound import TIMEOUT_ENV
from od_guard.checkpoint.remote_bound import TIMEOUT_FLAG
from od_guard.checkpoint.remote_bound import Settings
from od_guard.checkpoint.remote_bound import call_watched
from od_guard.checkpoint.remote_bound import settings
from od_guard.checkpoint.remote_errors import EXTRAS
from od_guard.checkpoint.remote_errors import S3
from od_guard.checkpoint.remote_errors import BucketNotFoundError
from od_guard.checkpoint.remote_errors import CredentialsExpiredError
from od_guard.checkpoint.remote_errors import EndpointUnreachableError
from od_guard.checkpoint.remote_errors import InterruptedReadError
from od_guard.checkpoint.remote_errors import NoCredentialsError
from od_guard.checkpoint.remote_errors import ObjectNotFoundError
from od_guard.checkpoint.remote_errors import PermissionDeniedError
from od_guard.checkpoint.remote_errors import RemoteStorageError
from od_guard.checkpoint.remote_errors import StorageTimeoutError
from od_guard.checkpoint.remote_errors import StorageUnavailableError
from od_guard.checkpoint.remote_errors import ThrottledError
from od_guard.checkpoint.remote_errors import bucket_of
from od_guard.checkpoint.remote_errors import install_hint
from od_guard.checkpoint.remote_errors import scheme
from od_guard.checkpoint.remote_errors import translate
from od_guard.checkpoint.remote_errors import unavailable
from od_guard.checkpoint.remote_file import RemoteFile
from od_guard.checkpoint.remote_fs import ATTEMPTS
from od_guard.checkpoint.remote_fs import CONNECT_TIMEOUT
from od_guard.checkpoint.remote_fs import endpoint
from od_guard.checkpoint.remote_fs import filesystem
from od_guard.checkpoint.remote_fs import serves
from od_guard.checkpoint.remote_retry import CUT_BACKOFF
from od_guard.checkpoint.remote_retry import RESUMES
from od_guard.checkpoint.remote_retry import THROTTLE_ATTEMPTS
from od_guard.checkpoint.remote_retry import THROTTLE_BACKOFF

__all__ = [
  "ATTEMPTS",
  "CONNECT_TIMEOUT",
  "CUT_BACKOFF",
  "DATA_BLOCK",
  "DEFAULT_TIMEOUT",
  "EXTRAS",
  "INDEX_BLOCK",
  "MAX_TIMEOUT",
  "NOTICE_AFTER",
  "RESUMES",
  "THROTTLE_ATTEMPTS",
  "THROTTLE_BACKOFF",
  "TIMEOUT_ENV",
  "TIMEOUT_FLAG",
  "BucketNotFoundError",
  "CredentialsExpiredError",
  "EndpointUnreachableError",
  "InterruptedReadError",
  "NoCredentialsError",
  "ObjectNotFoundError",
  "PermissionDeniedError",
  "RemoteFile",
  "RemoteStorageError",
  "Settings",
  "StorageTimeoutError",
  "StorageUnavailableError",
  "ThrottledError",
  "call_watched",
  "configure",
  "endpoint",
  "exists",
  "filesystem",
  "getsize",
  "install_hint",
  "isdir",
  "listdir",
  "open_binary",
  "scheme",
  "serves",
  "settings",
  "unavailable",
]

_backoff = remote_retry.backoff  # tests/remote_faults_test.py draws from it

# Read-ahead per request: an index is read whole, in a few requests (footer,
# index block, data blocks); a data shard is read where a reader seeks (the
# object graph, the tensors verify streams), plus at most this much more.
INDEX_BLOCK = 1 << 20
DATA_BLOCK = 1 << 16


def configure(timeout: float | str | None = None, *, source: str = TIMEOUT_FLAG) -> Settings:
  """Sets the bound on waiting for object storage (the CLI's --remote_timeout).

  Args:
    timeout: seconds; None returns to OD_GUARD_REMOTE_TIMEOUT or the default.
    source: what set it, named in messages.

  Returns:
    The settings now in force.

  Raises:
    UsageError: `timeout` is not a number of seconds in (0, MAX_TIMEOUT].
  """
  remote_bound.set_bound(timeout, source)
  filesystem.cache_clear()  # the clients' own timeouts follow the bound
  remote_fs.check_reachable.cache_clear()
  return settings()


# A request: its filesystem ready, watched, retried, every failure typed.

_WHAT = {  # what a request waits for, as "waiting for WHAT of PATH" says it
  "exists": "the metadata",
  "isdir": "the metadata",
  "info": "the metadata",
  "size": "the metadata",
  "ls": "the listing",
  "call_s3": "the metadata",
}


def _invoke(fs, path: str, name: str, *args, **kwargs):
  """fs.NAME(*args): the coroutine on fsspec's loop, watched, where fs is async."""
  if remote_fs.is_async(fs) and hasattr(fs, "_" + name):
    coro = getattr(fs, "_" + name)(*args, **kwargs)
    return remote_fs.on_loop(fs, coro, what=_WHAT.get(name, name), path=path)
  return getattr(fs, name)(*args, **kwargs)


def _ready(path: str):
  """The filesystem for `path`'s scheme, its endpoint checked (errors name `path`)."""
  protocol = scheme(path)
  settings()  # a bad OD_GUARD_REMOTE_TIMEOUT is said as it is
  try:
    fs = filesystem(protocol)
    remote_fs.check_reachable(protocol)
  except errors.OdGuardError as e:  # said about the protocol or endpoint; name the path too
    bare = f"{protocol}://"
    if e.received.startswith(bare) and not e.received[len(bare) :].strip(" ").startswith("/"):
      received = path + e.received[len(bare) :]
    else:
      received = f"{path}; endpoint {e.received}"
    raise type(e)(e.what, received=received, fix=e.fix) from e
  return fs


def _call(path: str, doing: str, name: str, *args, **kwargs):
  """(fs, fs.NAME(*args)): watched, retried, every failure typed."""
  fs = _ready(path)
  try:
    return fs, remote_retry.attempts(path, doing, lambda: _invoke(fs, path, name, *args, **kwargs))
  except errors.OdGuardError:
    raise
  except Exception as e:  # every client failure becomes a typed error
    raise translate(e, path, doing) from e


@functools.cache
def _check_bucket(protocol: str, bucket: str) -> None:
  """Raises BucketNotFoundError when `bucket` does not exist (once per bucket)."""
  path = f"{protocol}://{bucket}"
  if protocol not in EXTRAS:
    return
  fs = filesystem(protocol)
  try:
    if protocol in S3:
      once = functools.partial(_invoke, fs, path, "call_s3", "head_bucket", Bucket=bucket)
    else:
      once = functools.partial(_invoke, fs, path, "info", bucket)
    remote_retry.attempts(path, "read the bucket", once)
  except FileNotFoundError as e:
    raise BucketNotFoundError(
      f"The bucket {path} does not exist.",
      received=f"{path} at {remote_fs.where(protocol)} ({type(e).__name__}: {e})",
      fix="Check the bucket's name, and the endpoint/project you point at "
      + ("(AWS_ENDPOINT_URL, AWS region)." if protocol.startswith("s3") else "(GCS project)."),
    ) from e
  except errors.OdGuardError:
    raise
  except Exception as e:  # reported typed (credentials, permissions, endpoint)
    error = translate(e, path, "read the bucket")
    if isinstance(error, (NoCredentialsError, PermissionDeniedError, EndpointUnreachableError)):
      raise error from e


def _has_key(path: str) -> bool:
  return "/" in path.split("://", 1)[1].strip("/")


def exists(path: str) -> bool:
  _, found = _call(path, "read", "exists", path)
  if not found and _has_key(path):  # an object missing from a missing bucket: say so
    _check_bucket(scheme(path), bucket_of(path))
  return bool(found)


def isdir(path: str) -> bool:
  return bool(_call(path, "read", "isdir", path)[1])


def listdir(path: str) -> list[str]:
  _, names = _call(path, "list", "ls", path, detail=False)
  return sorted({str(n).rstrip("/").rsplit("/", 1)[-1] for n in names} - {""})


def getsize(path: str) -> int:
  return int(_call(path, "read", "size", path)[1] or 0)


def open_binary(path: str) -> BinaryIO:
  """Opens an object for ranged reads (an index with a large read-ahead, any
  other object with a small one).

  Raises:
    ObjectNotFoundError, BucketNotFoundError, NoCredentialsError,
    PermissionDeniedError, EndpointUnreachableError (StorageTimeoutError),
    ThrottledError, InterruptedReadError, CredentialsExpiredError, RemoteStorageError.
  """
  block = INDEX_BLOCK if path.endswith(".index") else DATA_BLOCK
  try:
    fs, info = _call(path, "open", "info", path)
  except ObjectNotFoundError:
    _check_bucket(scheme(path), bucket_of(path))
    raise
  if info.get("type") == "directory":
    raise ObjectNotFoundError(
      f"{path} is a prefix (a directory), not an object.",
      received=path,
      fix="Name the object itself (od-guard reads the checkpoint prefix, e.g. "
      "gs://bucket/train/ckpt-3).",
    )
  etag = remote_s3.etag(info) if scheme(path) in S3 else ""
  return RemoteFile(path, fs, int(info.get("size") or 0), block, etag)  # type: ignore[return-value]
