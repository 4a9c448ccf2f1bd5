"""The fsspec layer: which filesystem serves a scheme, the process-wide client for
it (with bounded options and the clients' own retries off), its endpoint, the
reachability probe, and coroutines run on the client's loop under the bound."""

from __future__ import annotations

import functools
import os
import socket
import urllib.parse

from od_guard import errors
from od_guard.checkpoint import remote_bound
from od_guard.checkpoint import remote_gcs
from od_guard.checkpoint import remote_s3
from od_guard.checkpoint.remote_errors import EXTRAS
from od_guard.checkpoint.remote_errors import GCS
from od_guard.checkpoint.remote_errors import S3
from od_guard.checkpoint.remote_errors import EndpointUnreachableError
from od_guard.checkpoint.remote_errors import endpoint_fix
from od_guard.checkpoint.remote_errors import scheme
from od_guard.checkpoint.remote_errors import translate
from od_guard.checkpoint.remote_errors import unavailable

# Seconds to connect (per attempt, at most the bound) and the reachability probe's attempts.
CONNECT_TIMEOUT = 5.0
ATTEMPTS = 2
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@functools.cache
def _filesystem_class(protocol: str):
  """The fsspec class serving `protocol`, or None."""
  try:
    import fsspec
  except ImportError:
    return None
  if protocol in GCS and not remote_gcs.wants_default_class():
    return remote_gcs.json_api_class()
  try:
    return fsspec.get_filesystem_class(protocol)
  except (ImportError, ValueError):
    return None


def serves(path: str) -> bool:
  """True when fsspec has an implementation of `path`'s scheme installed."""
  return _filesystem_class(scheme(path)) is not None


def _options(protocol: str) -> dict:
  """Storage options: fsspec's configuration for the protocol, with bounded
  timeouts and retries where the user set none."""
  from fsspec import config

  conf = dict(config.conf.get(protocol, {}))
  bound = remote_bound.settings().timeout
  # The clients' own read timeouts are a backstop: od_guard's watcher fires first.
  connect, read = min(CONNECT_TIMEOUT, bound), bound + 5
  if protocol in S3:
    conf = remote_s3.options(conf, connect, read)
  elif protocol in GCS:
    conf = remote_gcs.options(conf, connect, read)
  return conf


@functools.cache
def filesystem(protocol: str):
  """The (process-wide) fsspec filesystem for `protocol`."""
  cls = _filesystem_class(protocol)
  if cls is None:
    raise unavailable(f"{protocol}://")
  try:
    # Not fsspec's cached instance: configure() and a changed environment get a new client.
    fs = cls(**{**_options(protocol), "skip_instance_cache": True})
  except Exception as e:  # any client set-up failure is reported, typed
    raise translate(e, f"{protocol}://", "connect to") from e
  if protocol in S3:
    remote_s3.tune(fs)
  elif protocol in GCS:
    remote_gcs.tune(fs)
  return fs


def endpoint(protocol: str) -> str:
  """The endpoint URL the client talks to ('' when it has none, e.g. memory://)."""
  fs = filesystem(protocol)
  if protocol in S3:
    return remote_s3.endpoint(fs)
  if protocol in GCS:
    return remote_gcs.endpoint(fs)
  return ""


def _endpoint_source(protocol: str) -> str:
  return remote_s3.endpoint_source() if protocol in S3 else remote_gcs.endpoint_source()


@functools.cache
def check_reachable(protocol: str) -> None:
  """Fails fast, once per process, when the endpoint refuses connections or
  does not answer: the clients' own retries would take minutes.

  Raises:
    EndpointUnreachableError: no connection to the endpoint in ATTEMPTS attempts.
  """
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
  bound = remote_bound.settings().timeout
  connect = min(CONNECT_TIMEOUT, bound / ATTEMPTS)  # all attempts within the bound
  for _ in range(ATTEMPTS):
    try:
      socket.create_connection((parts.hostname, port), timeout=connect).close()
      return
    except OSError as e:
      last = e
  raise EndpointUnreachableError(
    f"The {protocol}:// endpoint {url} does not answer "
    f"({_reason(last)}; {ATTEMPTS} attempts, {connect:g} s each).",
    received=f"{url} (from {_endpoint_source(protocol)})",
    fix=endpoint_fix(protocol),
  )


def where(protocol: str) -> str:
  """The endpoint and where it came from, for messages ("the default endpoint")."""
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


def is_async(fs) -> bool:
  """True when `fs` is an async fsspec filesystem with its own event loop."""
  return bool(getattr(fs, "async_impl", False)) and getattr(fs, "loop", None) is not None


def on_loop(fs, coro, *, what: str, path: str, progress=None):
  """Runs `coro` on `fs`'s event loop, watched (`remote_bound.watch`)."""
  import asyncio

  future = asyncio.run_coroutine_threadsafe(coro, fs.loop)
  at = functools.partial(where, scheme(path))
  return remote_bound.watch(
    future, future.cancel, what=what, path=path, where=at, progress=progress
  )
