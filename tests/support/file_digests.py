"""sha256 digests of files, for tests that assert od_guard left their inputs byte-identical."""

from __future__ import annotations

from collections.abc import Iterable
import hashlib
import os
import stat


def sha256(path: str | os.PathLike) -> str:
  """The sha256 hex digest of the file at `path`."""
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def directory_hashes(directory: str | os.PathLike) -> dict[str, str]:
  """sha256 of every regular file in `directory`, by name (symlinks not followed)."""
  out = {}
  for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    if os.path.isfile(path) and not os.path.islink(path):
      out[name] = sha256(path)
  return out


def prefix_hashes(
  prefix: str, suffixes: Iterable[str] = (".index", ".data-00000-of-00001")
) -> dict[str, str | None]:
  """sha256 of a checkpoint prefix's files, by suffix (None if absent)."""
  out: dict[str, str | None] = {}
  for suffix in suffixes:
    try:
      out[suffix] = sha256(prefix + suffix)
    except FileNotFoundError:
      out[suffix] = None
  return out


def tree_fingerprint(root: str | os.PathLike) -> dict[str, str]:
  """Every entry below `root`: regular files by content hash, others by kind;
  nothing is opened that could block (FIFOs) and no link is followed."""
  out = {}
  for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
    for name in dirnames + filenames:
      p = os.path.join(dirpath, name)
      st = os.lstat(p)
      if stat.S_ISREG(st.st_mode):
        out[p] = sha256(p)
      elif stat.S_ISLNK(st.st_mode):
        out[p] = "link:" + os.readlink(p)
      else:
        out[p] = f"mode:{stat.S_IFMT(st.st_mode)}"
  return out
