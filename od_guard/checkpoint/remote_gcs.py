"""What od_guard does differently for Google Cloud Storage (gcsfs): the JSON API's
class, bounded session options, gcsfs's own retries off, where the endpoint came
from, and ranged reads that stream."""

from __future__ import annotations

import functools
import os

from od_guard.checkpoint import remote_bound
from od_guard.checkpoint.remote_errors import RemoteStorageError


def json_api_class():
  """gcsfs's filesystem class for the JSON API, or None where gcsfs does not import.

  gcsfs's default class asks a gRPC control plane for each bucket's layout (zonal /
  hierarchical), which emulators and private endpoints do not serve (a 60 s wait
  each); plain ranged reads need the JSON API only. GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT
  set keeps gcsfs's default (`wants_default_class`).
  """
  try:
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem
  except ImportError:
    return None


def wants_default_class() -> bool:
  return bool(os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"))


def options(conf: dict, connect: float, read: float) -> dict:
  """`conf` (fsspec's configuration for the protocol) over the "gs" and "gcs" ones,
  with the session's timeouts set where the user set none."""
  from fsspec import config

  conf = {**config.conf.get("gs", {}), **config.conf.get("gcs", {}), **conf}
  session = dict(conf.get("session_kwargs") or {})
  if "timeout" not in session:
    import aiohttp

    session["timeout"] = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
  conf["session_kwargs"] = session
  return conf


def tune(fs) -> None:
  """Calls gcsfs's request without its 6 retries: od_guard's are bounded and typed."""
  once = getattr(type(fs)._request, "__wrapped__", None)
  if once is not None:
    fs._request = functools.partial(once, fs)


def endpoint(fs) -> str:
  """The endpoint URL the client talks to."""
  return str(fs._location)


def endpoint_source() -> str:
  """Where the endpoint came from, as messages name it."""
  for var in ("FSSPEC_GCS_ENDPOINT_URL", "FSSPEC_GS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST"):
    if os.environ.get(var):
      return var
  return "Google Cloud Storage's default endpoint"


async def read_range(fs, path: str, start: int, end: int, buf: bytearray) -> None:
  """Appends bytes start..end of a GCS object to `buf` as they arrive."""
  from gcsfs.retry import validate_response

  await fs._set_session()
  headers = fs._get_headers({"Range": f"bytes={start}-{end - 1}"})
  response = await fs.session.get(fs.url(path), headers=headers)
  try:
    if response.status >= 400:
      validate_response(response.status, await response.read(), path)
    if response.status != 206 and start:
      raise RemoteStorageError(
        f"Cannot read {path}: the endpoint ignored the byte range asked for.",
        received=f"{path} (HTTP {response.status} to Range: bytes={start}-{end - 1})",
        fix="Use a GCS endpoint that serves ranged reads.",
      )
    await remote_bound.drain(response.content.read, end - start, buf)
  finally:
    response.close()
