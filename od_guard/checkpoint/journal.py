"""Journals: changes of several names in one directory, rolled forward after a crash.

A change of several names is a transaction: a small journal,
``<prefix>.od_guard-journal`` (JSON: the renames / moves still to do, a
`JournalPlan`), is published atomically (written, fsynced, then hard-linked into
place, which fails if one exists) before the first name changes; once it exists
the change is rolled forward by whoever finds it (`recover`), and it is removed
when the change is complete. Every step of a roll-forward is idempotent.

Leftovers of a killed run (temporary files whose owner is dead: no lock held,
no such process) are removed by the next run into the same directory
(`clean_leftovers`); what may still be in use is reported, not touched.

Names are resolved in a `safe_output.Directory`. No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
import errno
import functools
import json
import os
import stat

from od_guard.checkpoint import safe_output

try:  # POSIX only; without it, leftovers are reported instead of removed.
  import fcntl
except ImportError:  # pragma: no cover
  fcntl = None  # type: ignore[assignment]

JOURNAL_SUFFIX = ".od_guard-journal"
JOURNAL_SCHEMA = "od_guard.journal/1"
_JOURNAL_MAX_BYTES = 1 << 20


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


REMAP = "remap"
QUARANTINE = "quarantine"
_KINDS = (REMAP, QUARANTINE)


@dataclasses.dataclass(frozen=True)
class JournalPlan:
  """A change of several names in one directory, as its journal records it.

  Build one with `remap_plan` or `quarantine_plan`; `publish_journal` writes it
  (the commit point) and `apply_plan` carries it out.

  Attributes:
    kind: REMAP (temporary files renamed into place) or QUARANTINE (a
      checkpoint's files given new names).
    base: the prefix whose files change; the journal is ``<base>.od_guard-journal``.
    renames: (temporary file, final name) pairs, renamed in order (remap).
    clear: names removed before the first rename: the old index (remap).
    remove: names removed at the end: an old checkpoint's other data shards (remap).
    moves: (file, new name) pairs, moved without clobbering (quarantine).
    state: the prefix leaves the directory's state file before the moves
      (quarantine of a TF checkpoint).
  """

  kind: str
  base: str
  renames: tuple[tuple[str, str], ...] = ()
  clear: tuple[str, ...] = ()
  remove: tuple[str, ...] = ()
  moves: tuple[tuple[str, str], ...] = ()
  state: bool = False

  def to_json(self) -> dict:
    """The journal's JSON object (a remap's renames, clear and remove; a
    quarantine's state and moves)."""
    out: dict = {"schema": JOURNAL_SCHEMA, "base": self.base, "kind": self.kind}
    if self.kind == REMAP:
      out.update(
        renames=[list(p) for p in self.renames], clear=list(self.clear), remove=list(self.remove)
      )
    else:
      out.update(state=self.state, moves=[list(p) for p in self.moves])
    return out

  @classmethod
  def from_json(cls, value, name: str) -> JournalPlan | None:
    """The plan journal `name` holds, or None when `value` (its parsed JSON) is
    not a journal od_guard wrote for that name (`_valid_plan`)."""
    if not _valid_plan(value, name):
      return None
    return cls(
      kind=value["kind"],
      base=value["base"],
      renames=tuple((src, dst) for src, dst in value.get("renames", [])),
      clear=tuple(value.get("clear", [])),
      remove=tuple(value.get("remove", [])),
      moves=tuple((src, dst) for src, dst in value.get("moves", [])),
      state=bool(value.get("state")),
    )


def remap_plan(
  base: str, renames: Sequence[tuple[str, str]], clear: Sequence[str], remove: Sequence[str]
) -> JournalPlan:
  """A remap's plan: `renames` (temporary file, final name) after `clear`, then `remove`."""
  return JournalPlan(
    kind=REMAP, base=base, renames=tuple(renames), clear=tuple(clear), remove=tuple(remove)
  )


def quarantine_plan(base: str, moves: Sequence[tuple[str, str]], *, state: bool) -> JournalPlan:
  """A quarantine's plan: `moves` (file, new name); `state`: the prefix also
  leaves the directory's state file."""
  return JournalPlan(kind=QUARANTINE, base=base, moves=tuple(moves), state=state)


def publish_journal(directory: safe_output.Directory, plan: JournalPlan, token: str) -> JournalPlan:
  """Writes `plan` as ``<plan.base>.od_guard-journal``: the commit point.

  The journal's inode stays locked while this process lives, so that another
  run does not roll it forward under its feet.

  Returns:
    The plan as published, for `apply_plan`.

  Raises:
    safe_output.DestinationError: another change of the same prefix is pending.
    OSError: writing failed (nothing was published).
  """
  base = plan.base
  body = json.dumps(plan.to_json()).encode("utf-8")
  tmp, fd = directory.create_temp(plan.kind, "journal", token)
  try:
    safe_output.write_all(fd, body)
    os.fsync(fd)
    if not directory.publish(tmp, journal_name(base)):
      raise safe_output.DestinationError(
        f"Another change of {directory.join(base)!r} is in progress (its journal exists).",
        received=directory.join(journal_name(base)),
        fix="Wait for the other od-guard process to finish, then run again.",
      )
  finally:
    directory.unlink(tmp)
  directory.fsync()
  return plan


def _read_journal(
  directory: safe_output.Directory, name: str
) -> tuple[JournalPlan | None, int | None]:
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
    value = json.loads(raw.decode("utf-8")) if len(raw) <= _JOURNAL_MAX_BYTES else None
  except (UnicodeDecodeError, ValueError, RecursionError):
    value = None
  return JournalPlan.from_json(value, name), fd


def _valid_plan(plan, name: str) -> bool:
  if not isinstance(plan, dict) or plan.get("schema") != JOURNAL_SCHEMA:
    return False
  base = plan.get("base")
  if not _plain_name(base) or journal_name(base) != name:
    return False
  if plan.get("kind") not in _KINDS:
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
      if field == "renames" and not (safe_output.TEMP_PATTERN.match(src) and _own(base, dst)):
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


def apply_plan(
  directory: safe_output.Directory,
  plan: JournalPlan,
  before_moves: Callable[[], None] | None = None,
) -> None:
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
  renames = plan.renames
  if renames and directory.exists(renames[-1][0]):
    for name in plan.clear:
      directory.unlink(name)
  for src, dst in renames:
    if directory.exists(src):
      directory.replace(src, dst)
      directory.fsync()
  moves = plan.moves
  if moves and before_moves is not None:
    before_moves()
  for src, dst in moves:
    s, d = directory.lstat(src), directory.lstat(dst)
    if s is not None and d is None:
      directory.link(src, dst)
    elif s is not None and (d.st_dev, d.st_ino) != (s.st_dev, s.st_ino):
      raise FileExistsError(errno.EEXIST, "the target name is taken", directory.join(dst))
  directory.fsync()
  for src, _ in reversed(moves):
    directory.unlink(src)
  for name in plan.remove:
    directory.unlink(name)
  directory.fsync()
  directory.unlink(journal_name(plan.base))
  directory.fsync()


def pending_journals(directory: safe_output.Directory) -> list[str]:
  return [n for n in directory.listdir() if n.endswith(JOURNAL_SUFFIX)]


def recover(
  directory: safe_output.Directory,
  kind: str,
  *,
  only_base: str | None = None,
  skip: frozenset = frozenset(),
  before_moves: Callable[[JournalPlan], None] | None = None,
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
      if plan.kind != kind:
        continue
      base = plan.base
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


def journal_files(directory: safe_output.Directory) -> set[str]:
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
  directory: safe_output.Directory, kind: str, keep: set[tuple[int, int]] = frozenset()
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
    m = safe_output.TEMP_PATTERN.match(name)
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


def _unlocked(directory: safe_output.Directory, name: str) -> bool:
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
