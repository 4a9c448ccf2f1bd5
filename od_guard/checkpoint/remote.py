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
only adds bounded timeouts and retries, so that a dead endpoint fails in seconds
instead of hanging a CI check. Every failure is a typed error saying what to do.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import socket
from typing import BinaryIO
import urllib.parse

from od_guard import errors

_LOG = logging.getLogger("od_guard")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")

# Scheme -> the od_guard extra that installs its fsspec implementation.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
_PACKAGES = {"s3": "s3fs", "gcs": "gcsfs"}

# Read-ahead per request: an index is read whole, in a few requests (footer,
# index block, data blocks); a data shard is read where a reader seeks (the
# object graph, the tensors verify streams), plus at most this much more.
INDEX_BLOCK = 1 << 20
DATA_BLOCK = 1 << 16
# Seconds to connect (per attempt) and to wait for a response; the attempts.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
ATTEMPTS = 2


class RemoteStorageError(errors.UnreadableFileError):
  """Object storage refused or failed a read."""


class StorageUnavailableError(RemoteStorageError):
  """Nothing in this environment reads the URI's scheme."""


class NoCredentialsError(RemoteStorageError):
  """The storage client found no credentials."""


class PermissionDeniedError(RemoteStorageError):
  """The credentials found may not read the object (or are invalid)."""


class EndpointUnreachableError(RemoteStorageError):
  """The storage endpoint does not answer."""


class BucketNotFoundError(errors.CheckpointNotFoundError):
  """The URI's bucket does not exist."""


class ObjectNotFoundError(errors.CheckpointNotFoundError):
  """The bucket exists, the object does not."""


def scheme(path: str) -> str:
  m = _SCHEME.match(path)
  return m.group(1).lower() if m else ""


def _bucket(path: str) -> str:
  return path.split("://", 1)[1].split("/", 1)[0]


def install_hint(path: str) -> str:
  """What to install so that od_guard reads `path`'s scheme without TensorFlow."""
  s = scheme(path)
  if s in EXTRAS:
    return f"pip install 'od_guard[{EXTRAS[s]}]' (fsspec and {_PACKAGES[EXTRAS[s]]})"
  try:
    from fsspec.registry import known_implementations
  except ImportError:
    return f"pip install fsspec and its implementation of {s}://"
  known = known_implementations.get(s)
  if known:
    return known.get("err") or f"install fsspec's package for {s}://"
  return f"no fsspec implementation of {s}:// is known; register one with fsspec"


@functools.cache
def _filesystem_class(protocol: str):
  """The fsspec class serving `protocol`, or None."""
  try:
    import fsspec
  except ImportError:
    return None
  if protocol in ("gs", "gcs") and not os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"):
    # gcsfs's default class asks a gRPC control plane for each bucket's layout
    # (zonal / hierarchical), which emulators and private endpoints do not
    # serve (a 60 s wait each); plain ranged reads need the JSON API only.
    try:
      from gcsfs.core import GCSFileSystem

      return GCSFileSystem
    except ImportError:
      return None
  try:
    return fsspec.get_filesystem_class(protocol)
  except (ImportError, ValueError):
    return None


def serves(path: str) -> bool:
  """True when fsspec has an implementation of `path`'s scheme installed."""
  return _filesystem_class(scheme(path)) is not None


def unavailable(path: str, why: str = "") -> StorageUnavailableError:
  s = scheme(path)
  return StorageUnavailableError(
    f"od_guard cannot read {s}:// here: no fsspec implementation of it is installed"
    + (f", and {why}" if why else "")
    + ".",
    received=path,
    fix=install_hint(path),
  )


def _options(protocol: str) -> dict:
  """Storage options: fsspec's configuration for the protocol, with bounded
  timeouts and retries where the user set none."""
  from fsspec import config

  conf = dict(config.conf.get(protocol, {}))
  if protocol in ("s3", "s3a"):
    conf = {**config.conf.get("s3", {}), **conf}
    given = dict(conf.get("config_kwargs") or {})
    given.setdefault("connect_timeout", CONNECT_TIMEOUT)
    given.setdefault("read_timeout", READ_TIMEOUT)
    given.setdefault("retries", {"max_attempts": ATTEMPTS, "mode": "standard"})
    conf["config_kwargs"] = given
  elif protocol in ("gs", "gcs"):
    conf = {**config.conf.get("gs", {}), **config.conf.get("gcs", {}), **conf}
    session = dict(conf.get("session_kwargs") or {})
    if "timeout" not in session:
      import aiohttp

      session["timeout"] = aiohttp.ClientTimeout(
        sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
      )
    conf["session_kwargs"] = session
  return conf


@functools.cache
def filesystem(protocol: str):
  """The (process-wide) fsspec filesystem for `protocol`."""
  cls = _filesystem_class(protocol)
  if cls is None:
    raise unavailable(f"{protocol}://")
  try:
    fs = cls(**_options(protocol))
  except Exception as e:  # any client set-up failure is reported, typed
    raise _translate(e, f"{protocol}://", "connect to") from e
  if protocol in ("s3", "s3a"):
    fs.retries = ATTEMPTS  # s3fs's own retries, on top of botocore's
  return fs


def endpoint(protocol: str) -> str:
  """The endpoint URL the client talks to ('' when it has none, e.g. memory://)."""
  fs = filesystem(protocol)
  if protocol in ("s3", "s3a"):
    return str(fs.connect().meta.endpoint_url)
  if protocol in ("gs", "gcs"):
    return str(fs._location)
  return ""


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@functools.cache
def _check_reachable(protocol: str) -> None:
  """Fails fast, once per process, when the endpoint refuses connections or
  does not answer: the clients' own retries would take minutes."""
  if protocol not in EXTRAS or any(os.environ.get(v) for v in _PROXY_VARS):
    return
  try:
    url = endpoint(protocol)
  except errors.OdGuardError:
    raise
  except Exception:  # no endpoint to probe: the request itself will say
    return
  parts = urllib.parse.urlsplit(url)
  if not parts.hostname:
    return
  port = parts.port or (443 if parts.scheme == "https" else 80)
  last: OSError | None = None
  for _ in range(ATTEMPTS):
    try:
      socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT).close()
      return
    except OSError as e:
      last = e
  raise EndpointUnreachableError(
    f"The {protocol}:// endpoint {url} does not answer "
    f"({_reason(last)}; {ATTEMPTS} attempts, {CONNECT_TIMEOUT:g} s each).",
    received=f"{url} (from {_endpoint_source(protocol)})",
    fix=_endpoint_fix(protocol),
  )


def _where(protocol: str) -> str:
  try:
    url = endpoint(protocol)
  except Exception:  # only decorates a message
    return "the default endpoint"
  return f"{url} (from {_endpoint_source(protocol)})" if url else "the default endpoint"


def _reason(e: BaseException | None) -> str:
  if isinstance(e, socket.timeout):
    return "connection timed out"
  if isinstance(e, ConnectionRefusedError):
    return "connection refused"
  if isinstance(e, socket.gaierror):
    return "host name not found"
  return (getattr(e, "strerror", None) or str(e) or type(e).__name__).strip()


def _endpoint_source(protocol: str) -> str:
  from fsspec import config

  if protocol in ("s3", "s3a"):
    for var in ("FSSPEC_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
      if os.environ.get(var):
        return var
    if config.conf.get("s3", {}).get("endpoint_url"):
      return "fsspec config"
    return "AWS's default endpoint"
  for var in ("FSSPEC_GCS_ENDPOINT_URL", "FSSPEC_GS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST"):
    if os.environ.get(var):
      return var
  return "Google Cloud Storage's default endpoint"


def _endpoint_fix(protocol: str) -> str:
  if protocol in ("s3", "s3a"):
    return (
      "Check the endpoint (AWS_ENDPOINT_URL or FSSPEC_S3_ENDPOINT_URL, for S3-compatible "
      "servers such as MinIO) and that it is running and reachable from here."
    )
  return (
    "Check STORAGE_EMULATOR_HOST (for an emulator) or your network's access to "
    "storage.googleapis.com."
  )


def _is_no_credentials(e: BaseException) -> bool:
  name = type(e).__name__
  return name in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError") or (
    "Anonymous caller" in str(e)
  )


def _is_unreachable(e: BaseException) -> bool:
  names = {t.__name__ for t in type(e).__mro__}
  return bool(
    names
    & {
      "EndpointConnectionError",
      "ConnectTimeoutError",
      "ReadTimeoutError",
      "ClientConnectorError",
      "ServerTimeoutError",
      "FSTimeoutError",
      "TimeoutError",
      "ConnectionRefusedError",
      "ServerDisconnectedError",
    }
  )


def _credentials_fix(protocol: str) -> str:
  if protocol in ("s3", "s3a"):
    return (
      "Give the S3 client credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
      "AWS_PROFILE, or an instance role (public buckets: FSSPEC_S3_ANON=true)."
    )
  if protocol in ("gs", "gcs"):
    return (
      "Give gcsfs credentials: `gcloud auth application-default login`, or "
      "GOOGLE_APPLICATION_CREDENTIALS=/path/to/service-account.json."
    )
  return f"Configure credentials for {protocol}:// as its fsspec implementation documents."


def _translate(e: BaseException, path: str, doing: str) -> errors.OdGuardError:
  """A storage client's exception as a typed od_guard error."""
  if isinstance(e, errors.OdGuardError):
    return e
  protocol = scheme(path)
  detail = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
  received = f"{path} ({detail})"
  if isinstance(e, ImportError):
    return StorageUnavailableError(
      f"od_guard cannot read {protocol}:// here: its fsspec implementation does not load.",
      received=received,
      fix=install_hint(path),
    )
  if _is_no_credentials(e):
    return NoCredentialsError(
      f"Cannot {doing} {path}: no {protocol}:// credentials were found.",
      received=received,
      fix=_credentials_fix(protocol),
    )
  message = str(e)
  if isinstance(e, PermissionError) or "Forbidden" in message or " 401" in message[-6:]:
    bad_key = any(
      s in message for s in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "does not exist in our")
    )
    return PermissionDeniedError(
      f"Cannot {doing} {path}: "
      + (
        "the storage service rejected the credentials."
        if bad_key or "Invalid Credentials" in message
        else "access denied (the credentials are not valid there, or may not read it)."
      ),
      received=received,
      fix=_credentials_fix(protocol)
      + " The identity needs read access to the objects (s3:GetObject and s3:ListBucket; "
      "storage.objects.get and storage.objects.list on GCS).",
    )
  if _is_unreachable(e):
    return EndpointUnreachableError(
      f"Cannot {doing} {path}: the {protocol}:// endpoint did not answer.",
      received=received,
      fix=_endpoint_fix(protocol),
    )
  if isinstance(e, FileNotFoundError):
    return ObjectNotFoundError(
      f"{path} does not exist.",
      received=received,
      fix="Check the object's name (od-guard reads the checkpoint prefix, "
      "e.g. gs://bucket/train/ckpt-3).",
    )
  return RemoteStorageError(
    f"Cannot {doing} {path}: the storage client failed.",
    received=received,
    fix="Check the URI, the endpoint and your credentials; the client's message is above.",
  )


def _call(path: str, doing: str, fn, *args, **kwargs):
  protocol = scheme(path)
  try:
    fs = filesystem(protocol)
    _check_reachable(protocol)
  except errors.OdGuardError as e:  # said about the protocol or endpoint; name the path too
    bare = f"{protocol}://"
    if e.received.startswith(bare) and not e.received[len(bare) :].strip(" ").startswith("/"):
      received = path + e.received[len(bare) :]
    else:
      received = f"{path}; endpoint {e.received}"
    raise type(e)(e.what, received=received, fix=e.fix) from e
  try:
    return fs, fn(fs, *args, **kwargs)
  except Exception as e:  # every client failure becomes a typed error
    raise _translate(e, path, doing) from e


@functools.cache
def _check_bucket(protocol: str, bucket: str) -> None:
  """Raises BucketNotFoundError when `bucket` does not exist (once per bucket)."""
  path = f"{protocol}://{bucket}"
  fs = filesystem(protocol)
  try:
    if protocol in ("s3", "s3a"):
      fs.call_s3("head_bucket", Bucket=bucket)
    elif protocol in ("gs", "gcs"):
      fs.info(bucket)
    else:
      return
  except FileNotFoundError as e:
    raise BucketNotFoundError(
      f"The bucket {path} does not exist.",
      received=f"{path} at {_where(protocol)} ({type(e).__name__}: {e})",
      fix="Check the bucket's name, and the endpoint/project you point at "
      + ("(AWS_ENDPOINT_URL, AWS region)." if protocol.startswith("s3") else "(GCS project)."),
    ) from e
  except Exception as e:  # reported typed (credentials, permissions, endpoint)
    error = _translate(e, path, "read the bucket")
    if isinstance(error, (NoCredentialsError, PermissionDeniedError, EndpointUnreachableError)):
      raise error from e


def _has_key(path: str) -> bool:
  return "/" in path.split("://", 1)[1].strip("/")


def exists(path: str) -> bool:
  _, found = _call(path, "read", lambda fs: fs.exists(path))
  if not found and _has_key(path):  # an object missing from a missing bucket: say so
    _check_bucket(scheme(path), _bucket(path))
  return bool(found)


def isdir(path: str) -> bool:
  return bool(_call(path, "read", lambda fs: fs.isdir(path))[1])


def listdir(path: str) -> list[str]:
  _, names = _call(path, "list", lambda fs: fs.ls(path, detail=False))
  return sorted({str(n).rstrip("/").rsplit("/", 1)[-1] for n in names} - {""})


def getsize(path: str) -> int:
  return int(_call(path, "read", lambda fs: fs.size(path))[1] or 0)


class RemoteFile:
  """A read-only object opened for ranged reads; failures raise typed errors."""

  def __init__(self, path: str, raw):
    self.path = path
    self._raw = raw

  def _guard(self, fn, *args):
    try:
      return fn(*args)
    except Exception as e:  # every client failure becomes a typed error
      raise _translate(e, self.path, "read") from e

  def read(self, n: int = -1) -> bytes:
    return self._guard(self._raw.read, n)

  def readinto(self, buffer) -> int:  # h5py reads Keras .h5 files this way
    data = self.read(len(memoryview(buffer)))
    memoryview(buffer)[: len(data)] = data
    return len(data)

  def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
    return self._guard(self._raw.seek, offset, whence)

  def tell(self) -> int:
    return self._raw.tell()

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  @property
  def size(self) -> int:
    return int(self._raw.size)

  def close(self) -> None:
    with contextlib.suppress(Exception):  # closing a read-only file loses nothing
      self._raw.close()

  def __enter__(self) -> RemoteFile:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def open_binary(path: str) -> BinaryIO:
  """Opens an object for ranged reads (an index with a large read-ahead, any
  other object with a small one).

  Raises:
    ObjectNotFoundError, BucketNotFoundError, NoCredentialsError,
    PermissionDeniedError, EndpointUnreachableError, RemoteStorageError.
  """
  block = INDEX_BLOCK if path.endswith(".index") else DATA_BLOCK

  def _open(fs):
    return fs.open(path, "rb", block_size=block, cache_type="readahead")

  try:
    _, raw = _call(path, "open", _open)
  except ObjectNotFoundError:
    _check_bucket(scheme(path), _bucket(path))
    raise
  return RemoteFile(path, raw)  # type: ignore[return-value]
