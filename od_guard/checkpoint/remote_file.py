"""An object opened for ranged reads: `RemoteFile`.

Only what a reader asks for is fetched, with a read-ahead of a block; a read
returns every byte asked for (up to the object's end) or raises a typed error. A
read cut short (connection reset, a body shorter than its Content-Length) is
resumed from the byte reached, at most `RESUMES` times per read, then
`InterruptedReadError` names the object and the offset, so a cut connection never
looks like a truncated checkpoint.
"""

from __future__ import annotations

import functools
import os
import time

from od_guard import errors
from od_guard.checkpoint import remote_fs
from od_guard.checkpoint import remote_gcs
from od_guard.checkpoint import remote_retry
from od_guard.checkpoint import remote_s3
from od_guard.checkpoint.remote_errors import GCS
from od_guard.checkpoint.remote_errors import S3
from od_guard.checkpoint.remote_errors import InterruptedReadError
from od_guard.checkpoint.remote_errors import detail
from od_guard.checkpoint.remote_errors import scheme
from od_guard.checkpoint.remote_errors import translate
from od_guard.checkpoint.remote_retry import CUT_BACKOFF
from od_guard.checkpoint.remote_retry import RESUMES
from od_guard.checkpoint.remote_retry import THROTTLE_ATTEMPTS
from od_guard.checkpoint.remote_retry import THROTTLE_BACKOFF


class _CutShort(Exception):
  """A response body ended before the bytes its range asked for."""


async def _any_range(fs, path: str, start: int, end: int, buf: bytearray) -> None:
  buf += await fs._cat_file(path, start=start, end=end)


class RemoteFile:
  """A read-only object opened for ranged reads, with a read-ahead of `block`
  bytes. `read(n)` returns n bytes, or those left before the object's end: a
  read cut short is resumed from the byte reached (at most RESUMES times), and
  every failure raises a typed error."""

  def __init__(self, path: str, fs, size: int, block: int, etag: str = ""):
    self.path = path
    self._fs = fs
    self._size = size
    self._block = block
    self._etag = etag
    self._pos = 0
    self._cache_start = 0
    self._cache = b""
    protocol = scheme(path)
    if protocol in S3 and remote_fs.is_async(fs):
      self._range = functools.partial(remote_s3.read_range, etag=etag)
    elif protocol in GCS and remote_fs.is_async(fs):
      self._range = remote_gcs.read_range
    elif remote_fs.is_async(fs):
      self._range = _any_range
    else:
      self._range = None

  def _fetch(self, start: int, end: int) -> bytes:
    """Bytes start..end, every one of them, or a typed error."""
    protocol = scheme(self.path)
    buf = bytearray()
    throttled = cuts = 0
    while True:
      at = start + len(buf)
      what = f"bytes {at:,}..{end:,}"
      try:
        if self._range is None:
          buf += self._fs.cat_file(self.path, start=at, end=end)
        else:
          coro = self._range(self._fs, self.path, at, end, buf)
          remote_fs.on_loop(self._fs, coro, what=what, path=self.path, progress=buf.__len__)
        if start + len(buf) < end:
          raise _CutShort(f"the answer ended at byte {start + len(buf):,}, before byte {end:,}")
      except errors.OdGuardError:
        raise
      except Exception as e:  # classified: resumed, backed off, or typed
        reached = start + len(buf)
        if reached > at:
          remote_retry.accepted.add(protocol)
        kind, name = remote_retry.classify(e)
        if kind == remote_retry.CUT:
          cuts += 1
          if cuts > RESUMES:
            raise InterruptedReadError(
              f"Cannot read {self.path}: the connection was cut {cuts} times while reading "
              f"bytes {start:,}..{end:,}; od_guard stopped at byte {reached:,}.",
              received=f"{self.path} ({self._size:,} bytes) at {remote_fs.where(protocol)}; "
              f"the last cut: {detail(e)}",
              fix=f"{remote_retry.CUT_FIX} Each cut was resumed from the byte reached, "
              f"{RESUMES} times.",
            ) from e
          if cuts > 1 and reached == at:  # at once after progress (or the first cut)
            time.sleep(remote_retry.backoff(cuts - 1, CUT_BACKOFF))
          continue
        if kind == remote_retry.THROTTLED:
          throttled += 1
          if throttled >= THROTTLE_ATTEMPTS:
            raise remote_retry.throttled_error(self.path, "read", name, throttled, e) from e
          time.sleep(remote_retry.backoff(throttled, THROTTLE_BACKOFF))
          continue
        if kind == remote_retry.CREDENTIALS and protocol in remote_retry.accepted:
          raise remote_retry.expired_error(
            self.path, "read", name, e, f", byte {reached:,},"
          ) from e
        if kind == remote_retry.CHANGED:
          raise remote_retry.changed_error(self.path, e) from e
        raise translate(e, self.path, "read") from e
      remote_retry.accepted.add(protocol)
      return bytes(buf)

  def read(self, n: int = -1) -> bytes:
    pos, size = self._pos, self._size
    end = size if n is None or n < 0 else min(size, pos + n)
    if pos >= end:
      return b""
    cache_end = self._cache_start + len(self._cache)
    if self._cache_start <= pos and end <= cache_end:
      out = self._cache[pos - self._cache_start : end - self._cache_start]
    else:
      have = self._cache[pos - self._cache_start :] if self._cache_start <= pos < cache_end else b""
      ahead = min(size, end + self._block)
      fetched = self._fetch(pos + len(have), ahead)
      self._cache_start, self._cache = pos + len(have), fetched
      out = have + fetched[: end - pos - len(have)]
    self._pos = end
    return out

  def readinto(self, buffer) -> int:  # h5py reads Keras .h5 files this way
    data = self.read(len(memoryview(buffer)))
    memoryview(buffer)[: len(data)] = data
    return len(data)

  def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
    base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}.get(whence)
    if base is None or base + offset < 0:
      raise errors.UsageError(
        f"Invalid seek in {self.path}.",
        received=f"offset {offset}, whence {whence}",
        fix="Seek to an offset at or after the object's start.",
      )
    self._pos = base + offset
    return self._pos

  def tell(self) -> int:
    return self._pos

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  @property
  def size(self) -> int:
    return self._size

  def close(self) -> None:
    self._cache = b""

  def __enter__(self) -> RemoteFile:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
