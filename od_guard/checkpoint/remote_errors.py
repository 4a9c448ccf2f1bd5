"""Typed errors of object storage, and a storage client's exceptions as those errors.

Every failure of a read from ``gs://``, ``s3://`` or another fsspec protocol is one of
the classes below, saying what happened, what was received and what to do
(`translate` turns a client's own exception into one). `install_hint` and
`unavailable` say what to install when nothing here reads a scheme.
"""

from __future__ import annotations

import re

from od_guard import errors

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")

# Scheme -> the od_guard extra that installs its fsspec implementation.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
_PACKAGES = {"s3": "s3fs", "gcs": "gcsfs"}
# The schemes of each service.
S3 = ("s3", "s3a")
GCS = ("gs", "gcs")


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


class StorageTimeoutError(EndpointUnreachableError):
  """The endpoint took the request and then sent nothing within the bound."""


class InterruptedReadError(RemoteStorageError):
  """A read was cut short (reset, truncated body) more often than it is resumed."""


class ThrottledError(RemoteStorageError):
  """The service kept answering 503 SlowDown / 429 through every attempt."""


class CredentialsExpiredError(PermissionDeniedError):
  """Credentials the service accepted earlier in this process are now rejected."""


class BucketNotFoundError(errors.CheckpointNotFoundError):
  """The URI's bucket does not exist."""


class ObjectNotFoundError(errors.CheckpointNotFoundError):
  """The bucket exists, the object does not."""


def scheme(path: str) -> str:
  """`path`'s URI scheme, lower-cased ('' for a local path)."""
  m = _SCHEME.match(path)
  return m.group(1).lower() if m else ""


def bucket_of(path: str) -> str:
  """The bucket a URI names (what follows the scheme, up to the first '/')."""
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


def unavailable(path: str, why: str = "") -> StorageUnavailableError:
  """The error for a scheme nothing here reads (`why`: what else was tried)."""
  s = scheme(path)
  return StorageUnavailableError(
    f"od_guard cannot read {s}:// here: no fsspec implementation of it is installed"
    + (f", and {why}" if why else "")
    + ".",
    received=path,
    fix=install_hint(path),
  )


def endpoint_fix(protocol: str) -> str:
  """What to check when `protocol`'s endpoint does not answer."""
  if protocol in S3:
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


def credentials_fix(protocol: str) -> str:
  """How to give `protocol`'s client credentials."""
  if protocol in S3:
    return (
      "Give the S3 client credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
      "AWS_PROFILE, or an instance role (public buckets: FSSPEC_S3_ANON=true)."
    )
  if protocol in GCS:
    return (
      "Give gcsfs credentials: `gcloud auth application-default login`, or "
      "GOOGLE_APPLICATION_CREDENTIALS=/path/to/service-account.json."
    )
  return f"Configure credentials for {protocol}:// as its fsspec implementation documents."


def translate(e: BaseException, path: str, doing: str) -> errors.OdGuardError:
  """A storage client's exception as a typed od_guard error."""
  if isinstance(e, errors.OdGuardError):
    return e
  protocol = scheme(path)
  said = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
  received = f"{path} ({said})"
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
      fix=credentials_fix(protocol),
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
      fix=credentials_fix(protocol)
      + " The identity needs read access to the objects (s3:GetObject and s3:ListBucket; "
      "storage.objects.get and storage.objects.list on GCS).",
    )
  if _is_unreachable(e):
    return EndpointUnreachableError(
      f"Cannot {doing} {path}: the {protocol}:// endpoint did not answer.",
      received=received,
      fix=endpoint_fix(protocol),
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


def detail(e: BaseException) -> str:
  """A client exception as one line: its class, and the first line of its message."""
  text = str(e).strip()
  return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__
