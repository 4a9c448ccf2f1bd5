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
* A change of several names is a transaction: a small journal,
  ``<prefix>.od_guard-journal`` (JSON: the renames / moves still to do), is
  published atomically (written, fsynced, then hard-linked into place, which
  fails if one exists) before the first name changes; once it exists the
  change is rolled forward by whoever finds it (`recover`), and it is removed
  when the change is complete. Every step of a roll-forward is idempotent.
* Leftovers of a killed run (temporary files whose owner is dead: no lock held,
  no such process) are removed by the next run into the same directory
  (`clean_leftovers`); what may still be in use is reported, not touched.
* `interruptible`: SIGINT and SIGTERM raise during a write (so that `finally`
  blocks remove temporary files), are deferred while a transaction's names
  change, and are delivered again once the handlers are restored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import contextlib
import errno
import functools
import json
import os
import re
import secrets
import signal
import stat
import threading

from od_guard import errors

try:  # POSIX only; without it, leftovers are reported instead of removed.
  import fcntl
except ImportError:  # pragma: no cover
  fcntl = None  # type: ignore[assignment]

JOURNAL_SUFFIX = ".od_guard-journal"
JOURNAL_SCHEMA = "od_guard.journal/1"
_JOURNAL_MAX_BYTES = 1 << 20
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
      if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
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
    if d is None:
      try:
        os.link(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
      except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
          raise
        self.replace(src, dst)
        return
    self.unlink(src)


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
# Journals: multi-name changes rolled forward after a crash.


def _plain_name(name) -> bool:
  return (
    isinstance(name, str)
    and name not in ("", ".", "..")
    and "/" not in name
    and "\0" not in name
    and (os.sep not in name)
    and len(name) <= 255
  )


def journal_name(base: str) -> str:
  return base + JOURNAL_SUFFIX


def publish_journal(directory: Directory, base: str, plan: dict, token: str) -> dict:
  """Writes `plan` as ``<base>.od_guard-journal``: the commit point.

  The journal's inode stays locked while this process lives, so that another
  run does not roll it forward under its feet.

  Returns:
    The plan as published (with its schema and base), for `apply_plan`.

  Raises:
    DestinationError: another change of the same prefix is pending.
    OSError: writing failed (nothing was published).
  """
  plan = {"schema": JOURNAL_SCHEMA, "base": base, **plan}
  body = json.dumps(plan).encode("utf-8")
  tmp, fd = directory.create_temp(plan["kind"], "journal", token)
  try:
    write_all(fd, body)
    os.fsync(fd)
    if not directory.publish(tmp, journal_name(base)):
      raise DestinationError(
        f"Another change of {directory.join(base)!r} is in progress (its journal exists).",
        received=directory.join(journal_name(base)),
        fix="Wait for the other od-guard process to finish, then run again.",
      )
  finally:
    directory.unlink(tmp)
  directory.fsync()
  return plan


def _read_journal(directory: Directory, name: str) -> tuple[dict | None, int | None]:
  """The journal's plan (None if damaged) and a descriptor holding its lock
  (None when a live process holds it)."""
  try:
    fd = os.open(
      name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK, dir_fd=directory.fd
    )
  except FileNotFoundError:
    return None, -1
  except OSError:
    return None, None
  try:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
      os.close(fd)
      return None, None
    if fcntl is not None:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        os.close(fd)
        return None, None
    raw = os.read(fd, _JOURNAL_MAX_BYTES + 1)
  except OSError:
    os.close(fd)
    return None, None
  try:
    plan = json.loads(raw.decode("utf-8")) if len(raw) <= _JOURNAL_MAX_BYTES else None
  except (UnicodeDecodeError, ValueError, RecursionError):
    plan = None
  return (plan if _valid_plan(plan, name) else None), fd


def _valid_plan(plan, name: str) -> bool:
  if not isinstance(plan, dict) or plan.get("schema") != JOURNAL_SCHEMA:
    return False
  base = plan.get("base")
  if not _plain_name(base) or journal_name(base) != name:
    return False
  if plan.get("kind") not in ("remap", "quarantine"):
    return False
  for field in ("renames", "moves"):
    pairs = plan.get(field, [])
    if not isinstance(pairs, list) or not all(
      isinstance(p, list) and len(p) == 2 and all(_plain_name(n) for n in p) for p in pairs
    ):
      return False
    # A journal only ever moves temporary files, or files of its own prefix, to
    # names of a prefix it is about: never anything else in the directory.
    for src, dst in pairs:
      if field == "renames" and not (TEMP_PATTERN.match(src) and _own(base, dst)):
        return False
      if field == "moves" and not (_own(base, src) and _own(base, dst)):
        return False
  for field in ("clear", "remove"):
    names = plan.get(field, [])
    if not isinstance(names, list) or not all(_plain_name(n) and _own(base, n) for n in names):
      return False
  return True


def _own(base: str, name) -> bool:
  """Whether `name` is one of prefix `base`'s files (``base.<something>``)."""
  return _plain_name(name) and name.startswith(base + ".") and name != journal_name(base)


def apply_plan(directory: Directory, plan: dict, before_moves: Callable[[], None] | None = None):
  """Carries out (or completes) a journal's plan; idempotent.

  * renames (remap): if the last rename's source still exists, the names in
    `clear` (the old index) are removed first, so that no reader ever sees
    the old index with new data; then each temporary file that still exists
    is renamed over its final name, in order, with an fsync of the directory
    between them.
  * moves (quarantine): each file is given its new name without clobbering
    (hard link, then unlink), all links first, then the unlinks in reverse
    order.
  * remove: names removed at the end (an old checkpoint's extra data shards).
  """
  renames = plan.get("renames", [])
  if renames and directory.exists(renames[-1][0]):
    for name in plan.get("clear", []):
      directory.unlink(name)
  for src, dst in renames:
    if directory.exists(src):
      directory.replace(src, dst)
      directory.fsync()
  moves = plan.get("moves", [])
  if moves and before_moves is not None:
    before_moves()
  for src, dst in moves:
    s, d = directory.lstat(src), directory.lstat(dst)
    if s is not None and d is None:
      try:
        os.link(src, dst, src_dir_fd=directory.fd, dst_dir_fd=directory.fd, follow_symlinks=False)
      except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
          raise
        directory.replace(src, dst)
    elif s is not None and (d.st_dev, d.st_ino) != (s.st_dev, s.st_ino):
      raise FileExistsError(errno.EEXIST, "the target name is taken", directory.join(dst))
  directory.fsync()
  for src, _ in reversed(moves):
    directory.unlink(src)
  for name in plan.get("remove", []):
    directory.unlink(name)
  directory.fsync()
  directory.unlink(journal_name(plan["base"]))
  directory.fsync()


def pending_journals(directory: Directory) -> list[str]:
  return [n for n in directory.listdir() if n.endswith(JOURNAL_SUFFIX)]


def recover(
  directory: Directory,
  kind: str,
  *,
  only_base: str | None = None,
  skip: frozenset = frozenset(),
  before_moves: Callable[[dict], None] | None = None,
) -> tuple[list[str], list[str]]:
  """Rolls forward every interrupted change of `kind` in `directory` whose
  owner is gone.

  Args:
    directory: where to look.
    kind: 'remap' or 'quarantine'.
    only_base: only this prefix's journal.
    skip: prefixes whose journals are reported, never applied (the source's).
    before_moves: called with the journal's plan before a quarantine's moves.

  Returns:
    (prefixes completed, messages about journals left alone).
  """
  done, left = [], []
  for name in pending_journals(directory):
    if only_base is not None and name != journal_name(only_base):
      continue
    plan, fd = _read_journal(directory, name)
    if fd == -1:
      continue  # completed meanwhile
    if fd is None:
      left.append(f"{directory.join(name)} is in use by a running od-guard (left alone)")
      continue
    try:
      if plan is None:
        left.append(
          f"{directory.join(name)} is not a journal od-guard can complete (damaged); "
          "left alone: check the files of that prefix, then delete it"
        )
        continue
      if plan.get("kind") != kind:
        continue
      base = plan["base"]
      if base in skip:
        left.append(f"{directory.join(name)} would change the source's files (left alone)")
        continue
      hook = None
      if before_moves is not None:
        hook = functools.partial(before_moves, plan)
      apply_plan(directory, plan, hook)
      done.append(base)
    finally:
      os.close(fd)
  return done, left


def journal_files(directory: Directory) -> set[str]:
  """Every temporary file named by a journal in `directory` (which must not
  be cleaned as a leftover)."""
  names: set[str] = set()
  for name in pending_journals(directory):
    try:
      fd = os.open(
        name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK, dir_fd=directory.fd
      )
    except OSError:
      continue
    try:
      raw = os.read(fd, _JOURNAL_MAX_BYTES + 1) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
      raw = b""
    finally:
      os.close(fd)
    try:
      plan = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
      continue
    if isinstance(plan, dict) and isinstance(plan.get("renames"), list):
      for pair in plan["renames"]:
        if isinstance(pair, list) and pair and isinstance(pair[0], str):
          names.add(pair[0])
  return names


def _alive(pid: int) -> bool:
  if pid <= 0:
    return True
  try:
    os.kill(pid, 0)
  except (ProcessLookupError, OverflowError):
    return False
  except OSError:  # EPERM: it exists
    return True
  return True


def clean_leftovers(
  directory: Directory, kind: str, keep: set[tuple[int, int]] = frozenset()
) -> tuple[list[str], list[str]]:
  """Removes temporary files that a killed od-guard run of `kind` left in
  `directory`: named like ours, not named by a journal, no lock held, owner
  process gone. Never removes a file whose identity is in `keep`.

  Returns:
    (names removed, messages about leftovers left alone).
  """
  removed, left = [], []
  protected = journal_files(directory)
  for name in directory.listdir():
    m = TEMP_PATTERN.match(name)
    if not m or m[1] != kind or name in protected:
      continue
    pid = int(m[2])
    if pid == os.getpid():
      continue
    st = directory.lstat(name)
    if st is None:
      continue
    if (st.st_dev, st.st_ino) in keep:
      left.append(f"{directory.join(name)} is one of the source's files (left alone)")
      continue
    if not stat.S_ISREG(st.st_mode):
      if stat.S_ISLNK(st.st_mode):
        directory.unlink(name)  # a symlink planted at one of our names: the link only
        removed.append(name)
      else:
        left.append(f"{directory.join(name)} is not a regular file (left alone)")
      continue
    if _alive(pid) or not _unlocked(directory, name):
      left.append(f"{directory.join(name)} may belong to running process {pid} (left alone)")
      continue
    if directory.unlink(name):
      removed.append(name)
  if removed:
    directory.fsync()
  return removed, left


def _unlocked(directory: Directory, name: str) -> bool:
  if fcntl is None:
    return False
  try:
    fd = os.open(
      name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK, dir_fd=directory.fd
    )
  except OSError:
    return False
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except OSError:
    return False
  finally:
    os.close(fd)


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
