"""File access for local paths and remote URIs.

Local paths (and ``file://`` URIs) use the standard library. Remote URIs
(``gs://``, ``s3://`` and any other scheme fsspec has an implementation of
installed) go through `remote`, with ranged reads and no TensorFlow. Only a
scheme that no installed fsspec implementation serves (``ram://``, or
``gs://`` without gcsfs) is handed to ``tf.io.gfile``, imported on first use.

Both hold the same bounds under faults (docs/faults.md): every gfile call waits at
most `remote.settings().timeout` seconds (`remote.call_watched`), and a gfile read
returns every byte asked for up to the file's end, a failed or short read being
resumed from the byte reached at most `remote.RESUMES` times.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
from typing import BinaryIO

from od_guard import _files
from od_guard import errors

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_LOG = logging.getLogger("od_guard")


def _remote():
  """The fsspec layer, imported on first use: local reads never pay for it."""
  from od_guard.checkpoint import remote

  return remote


def is_remote(path: str) -> bool:
  """True for a URI (any scheme but ``file://``)."""
  return bool(_URI.match(path)) and not path.startswith("file://")


def local(path: str) -> str:
  return path[len("file://") :] if path.startswith("file://") else path


def _tensorflow():
  import tensorflow as tf  # Only URIs that fsspec does not serve pay for this import.

  return tf


# A tf.errors class (the first that matches) -> od_guard's error, its message and fix.
_GFILE_ERRORS = (
  ("PermissionDeniedError", "PermissionDeniedError", "Cannot read {path}: permission denied.",
   "Check the credentials TensorFlow uses for this storage."),
  ("NotFoundError", "ObjectNotFoundError", "{path} does not exist.", "Check the object's name."),
  ("OpError", "RemoteStorageError", "Cannot read {path}: TensorFlow's gfile failed.",
   "Check the URI, the endpoint and the credentials TensorFlow uses."),
)  # fmt: skip


class _Gfile:
  """The fallback for schemes no installed fsspec implementation serves:
  TensorFlow's gfile, with its errors typed."""

  def __init__(self, path: str):
    remote = _remote()
    try:
      tf = _tensorflow()
    except ImportError as e:
      raise remote.unavailable(path, "TensorFlow (whose gfile could try) is not installed") from e
    self.gfile, self.errors = tf.io.gfile, tf.errors
    if remote.scheme(path) in remote.EXTRAS:
      _LOG.warning(
        "od_guard: reading %s:// through TensorFlow's gfile; `%s` reads it without TensorFlow.",
        remote.scheme(path),
        remote.install_hint(path),
      )

  def call(self, path: str, fn, *args, what: str = "the answer"):
    remote = _remote()
    try:
      return remote.call_watched(path, what, fn, *args)
    except self.errors.UnimplementedError as e:
      raise remote.unavailable(
        path, f"TensorFlow's gfile does not implement it either ({str(e).splitlines()[0]})"
      ) from e
    except self.errors.OpError as e:
      raise self._typed(path, e) from e

  def _typed(self, path: str, e) -> errors.OdGuardError:
    """A gfile error (a tf.errors.OpError) as od_guard's storage error."""
    remote = _remote()
    # The first row that matches; the last (OpError) takes the rest.
    _, ours, what, fix = next(r for r in _GFILE_ERRORS if isinstance(e, getattr(self.errors, r[0])))
    return getattr(remote, ours)(what.format(path=path), received=f"{path} ({e.message})", fix=fix)


@functools.cache
def _fallback(scheme: str) -> _Gfile:
  return _Gfile(f"{scheme}://")


def _backend(path: str):
  """`remote` when fsspec serves the scheme, else TF's gfile (typed)."""
  remote = _remote()
  if remote.serves(path):
    return None
  try:
    return _fallback(remote.scheme(path))
  except remote.StorageUnavailableError as e:  # said about the scheme; name the path
    raise remote.StorageUnavailableError(e.what, received=path, fix=e.fix) from e


def exists(path: str) -> bool:
  if is_remote(path):
    g = _backend(path)
    return (
      _remote().exists(path)
      if g is None
      else g.call(path, g.gfile.exists, path, what="the metadata")
    )
  return os.path.lexists(local(path))


def isdir(path: str) -> bool:
  if is_remote(path):
    g = _backend(path)
    return (
      _remote().isdir(path) if g is None else g.call(path, g.gfile.isdir, path, what="the metadata")
    )
  return os.path.isdir(local(path))


def listdir(path: str) -> list[str]:
  if is_remote(path):
    g = _backend(path)
    if g is None:
      return _remote().listdir(path)
    return sorted(n.rstrip("/") for n in g.call(path, g.gfile.listdir, path, what="the listing"))
  return sorted(os.listdir(local(path)))


def join(base: str, *parts: str) -> str:
  if is_remote(base):
    return "/".join([base.rstrip("/"), *parts])
  return os.path.join(base, *parts)


def dirname(path: str) -> str:
  if is_remote(path):
    return path.rstrip("/").rsplit("/", 1)[0]
  return os.path.dirname(path)


def basename(path: str) -> str:
  return path.rstrip("/").rsplit("/", 1)[-1]


def getsize(path: str) -> int:
  if is_remote(path):
    g = _backend(path)
    return (
      _remote().getsize(path)
      if g is None
      else g.call(path, g.gfile.stat, path, what="the metadata").length
    )
  return os.path.getsize(local(path))


def unreadable(
  path: str, e: OSError, doing: str = "read", what: str = "path"
) -> errors.UnreadableFileError:
  """A local file operation's OSError as the error a user reads: "Cannot DOING PATH"."""
  return errors.UnreadableFileError(
    f"Cannot {doing} {path!r}: {e.strerror or e}.",
    received=path,
    fix=f"Check that the {what} exists and that you may read it.",
  )


def open_binary(path: str) -> BinaryIO:
  """Opens a file for reading, refusing anything that is not a regular file.

  Special files (FIFOs, devices, sockets) are refused up front because reading
  one can block forever.

  Raises:
    UnreadableFileError: the file is not a regular file or cannot be opened.
  """
  if is_remote(path):
    g = _backend(path)
    return _remote().open_binary(path) if g is None else _GfileReader(path, g)
  p = local(path)
  try:
    mode = os.stat(p).st_mode
  except OSError as e:
    raise unreadable(path, e) from e
  if not stat.S_ISREG(mode):
    raise errors.UnreadableFileError(
      f"{path!r} is not a regular file (it is a "
      f"{_files.kind(mode)}), so it cannot be a checkpoint file.",
      received=path,
      fix="Point at the checkpoint's files themselves, not at a pipe or device.",
    )
  try:
    return open(p, "rb")
  except OSError as e:
    raise errors.UnreadableFileError(
      f"Cannot read {path!r}: {e.strerror}.",
      received=f"{path} (mode {stat.filemode(mode)}, owner uid {os.stat(p).st_uid})",
      fix=(
        "Give the user running od_guard read permission "
        f"(for example `chmod a+r {p}`), or copy the checkpoint somewhere "
        "readable."
      ),
    ) from e


class _GfileReader:
  """A gfile opened for reading, its errors typed. `read(n)` returns n bytes, or
  those left before the file's end: a read that fails or comes back short is
  resumed from the byte reached (the file reopened) at most `remote.RESUMES` times."""

  def __init__(self, path: str, g: _Gfile):
    self._path, self._g = path, g
    self._f = self._open()
    self._size = g.call(path, self._f.size, what="the metadata")
    self._pos = 0

  def _open(self):
    return self._g.call(self._path, self._g.gfile.GFile, self._path, "rb", what="the metadata")

  def read(self, n: int = -1) -> bytes:
    remote = _remote()
    end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
    parts: list[bytes] = []
    start, cuts = self._pos, 0
    while self._pos < end:
      what = f"bytes {self._pos:,}..{end:,}"
      try:
        chunk = self._g.call(self._path, self._f.read, end - self._pos, what=what)
        if not chunk:
          raise remote.RemoteStorageError(
            f"Cannot read {self._path}: the read came back short.",
            received=f"{self._path} at byte {self._pos:,} of {self._size:,}",
          )
      except remote.RemoteStorageError as e:
        if type(e) is not remote.RemoteStorageError:  # permissions, timeouts: not retried
          raise
        cuts += 1
        if cuts > remote.RESUMES:
          raise remote.InterruptedReadError(
            f"Cannot read {self._path}: the read failed {cuts} times while reading bytes "
            f"{start:,}..{end:,}; od_guard stopped at byte {self._pos:,}.",
            received=f"{self._path} ({self._size:,} bytes) through TensorFlow's gfile; "
            f"the last failure: {e.received}",
            fix="The storage or the network fails mid-read: check it, then run od-guard "
            f"again. Each failure was resumed from the byte reached, {remote.RESUMES} times.",
          ) from e
        self._f.close()
        self._f = self._open()
        self._g.call(self._path, self._f.seek, self._pos)
        continue
      parts.append(chunk)
      self._pos += len(chunk)
    return b"".join(parts)

  def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
    base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
    self._pos = max(0, base + offset)
    self._g.call(self._path, self._f.seek, self._pos)
    return self._pos

  def tell(self) -> int:
    return self._pos

  def close(self) -> None:
    self._f.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def read_head(path: str, n: int) -> bytes:
  with open_binary(path) as f:
    return f.read(n)


def atomic_write_text(path: str, text: str) -> None:
  """Writes a local file atomically: a temporary file in the same directory,
  fsynced, then renamed over the target."""
  import tempfile  # only writers pay for it

  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".od_guard-", suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
