"""Reading a file a user names: a rules file, a report, a pipeline config.

Every such file is opened the same way:

* only a regular file is read: a directory, a named pipe (FIFO), a socket or a
  device is refused with a typed error, without blocking (the path is checked
  with `stat` first, then opened with ``O_NONBLOCK``, and the open file is
  checked with `fstat` to be that same regular file, so a path swapped for a
  pipe between the two steps is refused too; a symbolic link to a regular file
  is fine);
* its size is checked against a limit before anything is read, and no more
  than the limit is ever read (a file that grows while it is read is refused);
* bytes that are not UTF-8, TOML or JSON that does not parse, and values nested
  too deeply to parse become typed errors (what / received / fix), never a raw
  traceback.

The limits are far above any real file of each kind: `CONFIG_LIMIT` (a
pipeline.config), `RULES_LIMIT` (a naming rules TOML file), `REPORT_LIMIT` (a
JSON report given to ``remap --from-report``).

This module sits at the bottom of od_guard's layers: it imports only the
standard library and `od_guard.errors`.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, NoReturn

from od_guard import errors

CONFIG_LIMIT = 4 << 20  # a pipeline.config (the zoo's largest is under 10 KB)
RULES_LIMIT = 4 << 20  # a naming rules TOML file
REPORT_LIMIT = 8 << 20  # a JSON report (od-guard check --json, the guard's report.json)
MAX_JSON_CONTAINERS = 1_000_000  # objects and arrays in a JSON file, counted before parsing
_CHUNK = 1 << 20


class UserFileError(errors.UsageError):
  """A file the user named cannot be read as the kind of file it should be."""


class NotARegularFileError(UserFileError):
  """The path names a directory, a pipe, a socket or a device."""


class FileTooLargeError(UserFileError):
  """The file is larger than the limit for its kind."""


class FileDecodeError(UserFileError):
  """The file's bytes are not UTF-8, or its text is not the format it should be."""


def kind(mode: int) -> str:
  """What a non-regular file is, in words ('directory', 'named pipe (FIFO)', ...)."""
  if stat.S_ISDIR(mode):
    return "directory"
  if stat.S_ISFIFO(mode):
    return "named pipe (FIFO)"
  if stat.S_ISSOCK(mode):
    return "socket"
  if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
    return "device"
  return "special file"


def _raise(
  error: type[errors.OdGuardError] | None,
  default: type[UserFileError],
  *,
  what: str,
  received: str,
  fix: str,
  cause: BaseException | None = None,
) -> NoReturn:
  raise (error or default)(what, received=received, fix=fix) from cause


def _not_regular(path: str, what: str, flag: str, mode: int, error) -> NoReturn:
  described = kind(mode)
  inside = f" (point {flag} at the {what} inside it)" if stat.S_ISDIR(mode) else ""
  _raise(
    error,
    NotARegularFileError,
    what=f"The {what} {path!r} is a {described}, not a regular file.",
    received=f"{path} ({described})",
    fix=f"Pass a regular file to {flag}{inside}; od_guard does not read "
    "directories, pipes, sockets or devices.",
  )


def _too_large(path: str, what: str, size: int, limit: int, error, *, at_least: bool = False):
  more = "at least " if at_least else ""
  _raise(
    error,
    FileTooLargeError,
    what=f"The {what} {path!r} is {more}{size:,} bytes, more than the {limit:,} bytes "
    f"od_guard reads for a {what}.",
    received=f"{path} ({more}{size:,} bytes)",
    fix=f"Pass the {what} itself: a real one is far smaller than {limit >> 20} MB.",
  )


def read_bytes(
  path: str | os.PathLike,
  *,
  what: str,
  flag: str,
  limit: int,
  error: type[errors.OdGuardError] | None = None,
) -> bytes:
  """The bytes of the regular file `path`, at most `limit` of them.

  Args:
    path: a local path (a symbolic link to a regular file is followed).
    what: how messages name the file, e.g. "rules file".
    flag: the argument that named it, e.g. "--rules" (messages say "Check --rules.").
    limit: the most bytes read; a larger file is refused before it is read.
    error: the OdGuardError class to raise (default: this module's classes,
      all `UsageError`s).

  Raises:
    `error` or UserFileError: the file does not exist, cannot be read, is not
      a regular file, or is larger than `limit`.
  """
  path = os.fspath(path)
  before = _stat_regular(path, what, flag, limit, error)
  fd = _open(path, what, flag, before, error)
  try:
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode):
      _not_regular(path, what, flag, now.st_mode, error)
    if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
      _raise(
        error,
        UserFileError,
        what=f"The {what} {path!r} was replaced while od_guard opened it.",
        received=path,
        fix="Run the command again once nothing is rewriting the file.",
      )
    return _read_at_most(fd, path, what, flag, limit, error)
  finally:
    os.close(fd)


def _stat_regular(path: str, what: str, flag: str, limit: int, error) -> os.stat_result:
  """`path`'s status, once it is known to be a regular file of at most `limit` bytes."""
  try:
    before = os.stat(path)
  except (FileNotFoundError, NotADirectoryError) as e:
    _raise(
      error,
      UserFileError,
      what=f"The {what} {path!r} does not exist.",
      received=path,
      fix=f"Check {flag}.",
      cause=e,
    )
  except (OSError, ValueError) as e:  # permission, name too long, symlink loop, NUL byte
    _raise(
      error,
      UserFileError,
      what=f"Cannot read the {what} {path!r}: {getattr(e, 'strerror', None) or e}.",
      received=path,
      fix=f"Check {flag}, and that the user running od_guard may read it.",
      cause=e,
    )
  if not stat.S_ISREG(before.st_mode):
    _not_regular(path, what, flag, before.st_mode, error)
  if before.st_size > limit:
    _too_large(path, what, before.st_size, limit, error)
  return before


def _open(path: str, what: str, flag: str, before: os.stat_result, error) -> int:
  """A read-only descriptor that never blocks on open (a FIFO swapped in) nor
  becomes the controlling terminal."""
  flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
  flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
  try:
    return os.open(path, flags)
  except OSError as e:
    _raise(
      error,
      UserFileError,
      what=f"Cannot read the {what} {path!r}: {e.strerror}.",
      received=f"{path} (mode {stat.filemode(before.st_mode)})",
      fix=f"Give the user running od_guard read permission, or check {flag}.",
      cause=e,
    )


def _read_at_most(fd: int, path: str, what: str, flag: str, limit: int, error) -> bytes:
  """Everything `fd` holds, refused once it passes `limit` bytes (the file grew)."""
  chunks = []
  total = 0
  while total <= limit:
    try:
      chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
    except OSError as e:
      _raise(
        error,
        UserFileError,
        what=f"Cannot read the {what} {path!r}: {e.strerror}.",
        received=path,
        fix=f"Check {flag} and the disk it is on.",
        cause=e,
      )
    if not chunk:
      break
    chunks.append(chunk)
    total += len(chunk)
  if total > limit:
    _too_large(path, what, total, limit, error, at_least=True)
  return b"".join(chunks)


def decode_utf8(
  raw: bytes,
  path: str,
  *,
  what: str,
  error: type[errors.OdGuardError] | None = None,
  fix: str = "",
) -> str:
  """`raw` decoded as UTF-8 (a UTF-8 byte order mark is dropped).

  Raises:
    `error` or FileDecodeError: the bytes are not UTF-8 (UTF-16 is named).
  """
  try:
    return raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
    _raise(
      error,
      FileDecodeError,
      what=f"The {what} {path!r} is not UTF-8 text"
      + (
        " (it is UTF-16)." if utf16 else f" (byte {e.start:,} is {raw[e.start : e.start + 1]!r})."
      ),
      received=f"{path} ({len(raw):,} bytes, starts with {raw[:16]!r})",
      fix=fix or f"Save the {what} as UTF-8 text.",
      cause=e,
    )


def read_text(
  path: str | os.PathLike,
  *,
  what: str,
  flag: str,
  limit: int,
  error: type[errors.OdGuardError] | None = None,
) -> str:
  """The file's text (`read_bytes`, then UTF-8)."""
  path = os.fspath(path)
  raw = read_bytes(path, what=what, flag=flag, limit=limit, error=error)
  return decode_utf8(raw, path, what=what, error=error)


def _too_deep(path: str, what: str, error, cause: BaseException) -> NoReturn:
  _raise(
    error,
    FileDecodeError,
    what=f"The {what} {path!r} nests values too deeply to be read.",
    received=f"{path} (more levels of nesting than Python's recursion limit)",
    fix=f"A {what} nests a few levels at most: pass the real one.",
    cause=cause,
  )


def read_toml(
  path: str | os.PathLike,
  *,
  what: str,
  flag: str,
  limit: int,
  error: type[errors.OdGuardError] | None = None,
  fix: str = "",
) -> dict[str, Any]:
  """The file's TOML document (`read_text`, then `tomllib`).

  Raises:
    `error` or UserFileError: see `read_bytes`; not UTF-8, not TOML (the
      message quotes tomllib's line and column), or nested too deeply.
  """
  import tomllib

  path = os.fspath(path)
  text = read_text(path, what=what, flag=flag, limit=limit, error=error)
  try:
    return tomllib.loads(text)
  except (tomllib.TOMLDecodeError, ValueError) as e:  # ValueError: an integer over 4300 digits
    _raise(
      error,
      FileDecodeError,
      what=f"The {what} {path!r} is not valid TOML: {e}.",
      received=path,
      fix=fix or f"Fix the {what} at the line and column named.",
      cause=e,
    )
  except RecursionError as e:
    _too_deep(path, what, error, e)


def read_json(
  path: str | os.PathLike,
  *,
  what: str,
  flag: str,
  limit: int,
  error: type[errors.OdGuardError] | None = None,
  fix: str = "",
) -> Any:
  """The file's JSON value (`read_text`, then `json`).

  Raises:
    `error` or UserFileError: see `read_bytes`; not UTF-8, not JSON (the
      message quotes the parser's line and column), or nested too deeply.
  """
  path = os.fspath(path)
  text = read_text(path, what=what, flag=flag, limit=limit, error=error)
  # Each object or array costs Python ~60 bytes or more: counted (brackets in
  # strings too, which only errs on the safe side) before parsing.
  containers = text.count("{") + text.count("[")
  if containers > MAX_JSON_CONTAINERS:
    _raise(
      error,
      FileTooLargeError,
      what=f"The {what} {path!r} holds more than {MAX_JSON_CONTAINERS:,} JSON objects and "
      "arrays, more than od_guard reads.",
      received=f"{path} ({containers:,} brackets in {len(text):,} characters)",
      fix=f"Pass the {what} itself: a real one holds far fewer.",
    )
  try:
    return json.loads(text)
  except RecursionError as e:
    _too_deep(path, what, error, e)
  except ValueError as e:  # JSONDecodeError; integers over Python's digit limit
    _raise(
      error,
      FileDecodeError,
      what=f"The {what} {path!r} is not valid JSON: {e}.",
      received=f"{path} ({len(text):,} characters)",
      fix=fix or f"Pass the {what} as written by od_guard.",
      cause=e,
    )
