"""File access for local paths and `tf.io.gfile` URIs.

Local paths (and ``file://`` URIs) use the standard library, so reading a
local checkpoint never imports TensorFlow. Any other scheme (``gs://``,
``s3://``, ``ram://``, ``hdfs://`` ...) is handed to ``tf.io.gfile``, imported
on first use.
"""

from __future__ import annotations

import os
import re
import stat
from typing import BinaryIO

from od_guard import errors

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_remote(path: str) -> bool:
  """True for a URI that only `tf.io.gfile` can read."""
  return bool(_URI.match(path)) and not path.startswith("file://")


def local(path: str) -> str:
  return path[len("file://") :] if path.startswith("file://") else path


def _gfile():
  import tensorflow as tf  # Only remote URIs pay for this import.

  return tf.io.gfile


def exists(path: str) -> bool:
  if is_remote(path):
    return _gfile().exists(path)
  return os.path.lexists(local(path))


def isdir(path: str) -> bool:
  if is_remote(path):
    return _gfile().isdir(path)
  return os.path.isdir(local(path))


def listdir(path: str) -> list[str]:
  if is_remote(path):
    return sorted(n.rstrip("/") for n in _gfile().listdir(path))
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
    return _gfile().stat(path).length
  return os.path.getsize(local(path))


def open_binary(path: str) -> BinaryIO:
  """Opens a file for reading, refusing anything that is not a regular file.

  Special files (FIFOs, devices, sockets) are refused up front because reading
  one can block forever.

  Raises:
    UnreadableFileError: the file is not a regular file or cannot be opened.
  """
  if is_remote(path):
    return _gfile().GFile(path, "rb")
  p = local(path)
  try:
    mode = os.stat(p).st_mode
  except OSError as e:
    raise errors.UnreadableFileError(
      f"Cannot read {path!r}: {e.strerror}.",
      received=path,
      fix="Check that the path exists and that you may read it.",
    ) from e
  if not stat.S_ISREG(mode):
    raise errors.UnreadableFileError(
      f"{path!r} is not a regular file (it is a "
      f"{_file_kind(mode)}), so it cannot be a checkpoint file.",
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


def _file_kind(mode: int) -> str:
  if stat.S_ISDIR(mode):
    return "directory"
  if stat.S_ISFIFO(mode):
    return "named pipe"
  if stat.S_ISSOCK(mode):
    return "socket"
  if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
    return "device"
  return "special file"


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
