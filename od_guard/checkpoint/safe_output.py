"""Writing next to a user's files without ever losing one.

Used by `od-guard remap` (bundle_writer.copy_bundle) and by the save-time
quarantine (naming.save_guard). No TensorFlow. The rules:

* Every name is resolved in an open directory (`Directory`, a descriptor), so a
  directory swapped or symlinked after the checks cannot redirect a write.
* Temporary files are created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``,
  mode 0600) under unpredictable names,
  ``.od_guard-<kind>-<pid>-<16 random hex digits>.<part>.tmp``; an existing
  path, or a symlink planted at that name, is never opened for writing. While
  its owner runs, each temporary file is locked (``flock``).
* A change of several names is a transaction (`journal`): a journal is
  published before the first name changes, and rolled forward by whoever finds
  it after a crash; the next run removes the temporary files of killed runs.
* `interruptible`: SIGINT and SIGTERM raise during a write (so that `finally`
  blocks remove temporary files), are deferred while a transaction's names
  change, and are delivered again once the handlers are restored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
import errno
import os
import re
import secrets
import signal
import threading

from od_guard import errors

try:  # POSIX only; without it, leftovers are reported instead of removed.
  import fcntl
except ImportError:  # pragma: no cover
  fcntl = None  # type: ignore[assignment]

# os.link errors of a file system without hard links (then a rename does instead).
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)
TEMP_PATTERN = re.compile(r"^\.od_guard-([a-z]+)-(\d{1,10})-([0-9a-f]{16})\.([a-z]+)\.tmp$")


class DestinationError(errors.OdGuardError):
  """A file cannot be written where asked (the inputs are untouched)."""


def _why(e: OSError) -> str:
  return e.strerror or type(e).__name__


def write_error(e: OSError, where: str, action: str = "write") -> DestinationError:
  """A typed error for an OSError met while writing in `where`."""
  code = e.errno
  if code == errno.ENOSPC or code == errno.EDQUOT:
    fix = "Free space there (or raise the quota), or write the destination somewhere else."
  elif code == errno.EROFS:
    fix = "The file system is mounted read-only: choose a destination on a writable one."
  elif code in (errno.EACCES, errno.EPERM):
    fix = "Choose a destination you may write to, or give this user write permission there."
  elif code == errno.EFBIG:
    fix = "The file size limit (ulimit -f) or the file system's limit is too low for it."
  elif code in (errno.ENOTDIR, errno.EEXIST):
    fix = "A file stands where a directory is needed: choose another destination."
  elif code == errno.EISDIR:
    fix = "A directory stands where a file must go: choose another destination prefix."
  else:
    fix = "Check the destination's file system, or choose another destination."
  return DestinationError(
    f"Cannot {action} in {where!r}: {_why(e)}. Nothing was changed there.",
    received=f"{e.filename or where} (errno {errno.errorcode.get(code, code)})",
    fix=fix,
  )


def identity(path: str, *, follow: bool = True) -> tuple[int, int] | None:
  """(st_dev, st_ino) of `path`, or None when it does not exist."""
  try:
    st = os.stat(path, follow_symlinks=follow)
  except (FileNotFoundError, NotADirectoryError):
    return None
  except OSError:
    return None
  return st.st_dev, st.st_ino


def make_directories(path: str, what: str) -> None:
  """`os.makedirs(path, exist_ok=True)`, with typed errors."""
  try:
    os.makedirs(path, exist_ok=True)
  except (FileExistsError, NotADirectoryError) as e:  # a file stands on the way
    blocker = path
    while blocker and os.path.dirname(blocker) != blocker:
      if os.path.lexists(blocker) and not os.path.isdir(blocker):
        break
      blocker = os.path.dirname(blocker)
    raise DestinationError(
      f"Cannot create the directory of the {what}: {blocker!r} exists and is not a directory.",
      received=path,
      fix="Choose a destination whose directory is a directory (or does not exist yet).",
    ) from e
  except OSError as e:
    raise write_error(e, path, "create a directory") from e


class Directory:
  """A directory opened once; every name is resolved in it.

  Attributes:
    path: the directory's path as given (for messages and reads).
    fd: its descriptor.
    identity: (st_dev, st_ino).
  """

  def __init__(self, path: str):
    self.path = path
    try:
      self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
      if e.errno == errno.ENOTDIR:
        raise DestinationError(
          f"{path!r} is not a directory, so nothing can be written below it.",
          received=path,
          fix="Choose a destination below a directory.",
        ) from e
      raise write_error(e, path, "open the directory") from e
    st = os.fstat(self.fd)
    self.identity = (st.st_dev, st.st_ino)
    self._locks: list[int] = []
    # Journals this process published here: their changes are committed.
    self.committed: set[str] = set()

  def close(self) -> None:
    for fd in self._locks:
      with contextlib.suppress(OSError):
        os.close(fd)
    self._locks = []
    with contextlib.suppress(OSError):
      os.close(self.fd)

  def __enter__(self) -> Directory:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def join(self, name: str) -> str:
    return os.path.join(self.path, name)

  def lstat(self, name: str) -> os.stat_result | None:
    try:
      return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
    except FileNotFoundError:
      return None

  def stat(self, name: str) -> os.stat_result | None:
    """Follows symlinks; None when the name (or its target) does not exist."""
    try:
      return os.stat(name, dir_fd=self.fd)
    except (FileNotFoundError, NotADirectoryError):
      return None
    except OSError:
      return None

  def exists(self, name: str) -> bool:
    return self.lstat(name) is not None

  def listdir(self) -> list[str]:
    return sorted(os.listdir(self.fd))

  def fsync(self) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on directories
      os.fsync(self.fd)

  def replace(self, src: str, dst: str) -> None:
    os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

  def unlink(self, name: str) -> bool:
    """Removes `name` (a symlink itself, never its target); False if absent."""
    try:
      os.unlink(name, dir_fd=self.fd)
    except FileNotFoundError:
      return False
    return True

  def create_temp(self, kind: str, part: str, token: str) -> tuple[str, int]:
    """Creates ``.od_guard-<kind>-<pid>-<token>.<part>.tmp`` exclusively
    (never following or reusing anything at that name) and locks it.

    Returns:
      (name, descriptor open for writing). The descriptor stays open (and the
      lock held) until `close`; close the returned descriptor separately only
      via `release`.
    """
    name = f".od_guard-{kind}-{os.getpid()}-{token}.{part}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
      fd = os.open(name, flags, 0o600, dir_fd=self.fd)
    except OSError as e:
      raise write_error(e, self.path, "create a temporary file") from e
    if fcntl is not None:
      with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    self._locks.append(fd)
    return name, fd

  def publish(self, tmp_name: str, name: str) -> bool:
    """Gives the complete file `tmp_name` the name `name` unless `name`
    exists (a hard link: atomic, never clobbers; `name` is then in
    `committed`); removes `tmp_name`.

    Returns:
      False when `name` already exists (nothing changed).
    """
    try:
      os.link(tmp_name, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
    except FileExistsError:
      return False
    except OSError as e:
      if e.errno not in _NO_HARD_LINKS:
        raise
      # No hard links on this file system: check, then rename (a small race).
      if self.exists(name):
        return False
      self.replace(tmp_name, name)
      self.committed.add(name)
      return True
    self.committed.add(name)
    with contextlib.suppress(OSError):  # a leftover name of the journal is harmless
      self.unlink(tmp_name)
    return True

  def move_no_clobber(self, src: str, dst: str) -> None:
    """Moves `src` to `dst` unless `dst` is another file; idempotent (a move
    interrupted after the link, or already done, completes)."""
    s, d = self.lstat(src), self.lstat(dst)
    if s is None:
      return  # already moved
    if d is not None and (d.st_dev, d.st_ino) != (s.st_dev, s.st_ino):
      raise FileExistsError(errno.EEXIST, "the target name is taken", self.join(dst))
    if d is None and not self.link(src, dst):
      return  # renamed: no hard links here
    self.unlink(src)

  def link(self, src: str, dst: str) -> bool:
    """Gives the file `src` the name `dst` too (a hard link; a symlink is linked,
    not followed); on a file system without hard links, renames it instead.

    Returns:
      False when `src` was renamed (it no longer exists).
    """
    try:
      os.link(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
    except OSError as e:
      if e.errno not in _NO_HARD_LINKS:
        raise
      self.replace(src, dst)
      return False
    return True


def new_token() -> str:
  """16 random hex digits: temporary names nobody can predict."""
  return secrets.token_hex(8)


def default_file_mode() -> int:
  """The mode a plain ``open(path, "w")`` would give a new file (0666 less the
  umask), read without changing the umask where the system says it."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Umask:"):
          return 0o666 & ~int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return 0o666 & ~mask


def write_all(fd: int, data: bytes) -> None:
  view = memoryview(data)
  while view:
    n = os.write(fd, view)
    view = view[n:]


# ---------------------------------------------------------------------------
# Signals.


class Interrupted(BaseException):
  """SIGINT or SIGTERM arrived during a write (raised by `interruptible`)."""

  def __init__(self, signum: int):
    super().__init__(signum)
    self.signum = signum


class _Guard:
  def __init__(self):
    self.deferring = False
    self.pending: int | None = None

  @contextlib.contextmanager
  def deferred(self) -> Iterator[None]:
    """Signals wait until the block ends (a transaction's renames)."""
    previous = self.deferring
    self.deferring = True
    try:
      yield
    finally:
      self.deferring = previous
    if not previous and self.pending is not None:
      signum, self.pending = self.pending, None
      raise Interrupted(signum)


_SIGNALS: Sequence[int] = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interruptible() -> Iterator[_Guard]:
  """SIGINT / SIGTERM raise `Interrupted` inside the block (so its `finally`
  blocks clean up); afterwards the previous handlers are restored and the
  signal is delivered again to them (SIGINT: KeyboardInterrupt; SIGTERM, by
  default: the process ends as it would have). Outside the main thread,
  signals are left as they are."""
  guard = _Guard()
  if threading.current_thread() is not threading.main_thread():
    yield guard
    return

  def handler(signum, frame):
    del frame
    if guard.deferring:
      guard.pending = signum
      return
    raise Interrupted(signum)

  previous = {}
  try:
    for s in _SIGNALS:
      if signal.getsignal(s) != signal.SIG_IGN:  # an ignored signal stays ignored
        previous[s] = signal.signal(s, handler)
  except (ValueError, OSError):
    for s, h in previous.items():
      signal.signal(s, h)
    yield guard
    return
  caught = None
  try:
    yield guard
  except Interrupted as e:
    caught = e.signum
  finally:
    guard.deferring = True  # a signal arriving now is delivered below, not raised here
    for s, h in previous.items():
      signal.signal(s, h if h is not None else signal.SIG_DFL)
  if caught is None:
    caught = guard.pending
  if caught is not None:
    signal.raise_signal(caught)
    raise KeyboardInterrupt  # a handler that returned: stop anyway
