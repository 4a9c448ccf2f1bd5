"""What od_guard does differently for S3 (s3fs over aiobotocore): bounded client
options, s3fs's own retries off, where the endpoint came from, and ranged reads that
stream (and stay on one version of the object)."""

from __future__ import annotations

import os

from od_guard.checkpoint import remote_bound


def options(conf: dict, connect: float, read: float) -> dict:
  """`conf` (fsspec's configuration for the protocol) over the "s3" one, with the
  timeouts and a single attempt set where the user set none."""
  from fsspec import config

  conf = {**config.conf.get("s3", {}), **conf}
  given = dict(conf.get("config_kwargs") or {})
  given.setdefault("connect_timeout", connect)
  given.setdefault("read_timeout", read)
  # One attempt (botocore's max_attempts counts retries): od_guard retries.
  given.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
  conf["config_kwargs"] = given
  return conf


def tune(fs) -> None:
  """Turns s3fs's own retries off: od_guard's are bounded and typed."""
  fs.retries = 1


def endpoint(fs) -> str:
  """The endpoint URL the client talks to."""
  return str(fs.connect().meta.endpoint_url)


def endpoint_source() -> str:
  """Where the endpoint came from, as messages name it."""
  from fsspec import config

  for var in ("FSSPEC_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
    if os.environ.get(var):
      return var
  if config.conf.get("s3", {}).get("endpoint_url"):
    return "fsspec config"
  return "AWS's default endpoint"


def etag(info: dict) -> str:
  """The object's ETag from its metadata ('' where none)."""
  return str(info.get("ETag") or "")


async def read_range(fs, path: str, start: int, end: int, buf: bytearray, etag: str) -> None:
  """Appends bytes start..end of an S3 object to `buf` as they arrive."""
  bucket, key, version = fs.split_path(path)
  await fs.set_session()
  client = await fs.get_s3(bucket)
  kwargs = {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
  if version:
    kwargs["VersionId"] = version
  if etag:
    kwargs["IfMatch"] = etag  # every resumed range from the same version
  body = (await client.get_object(**kwargs))["Body"]
  try:
    await remote_bound.drain(body.read, end - start, buf)
  finally:
    body.close()
