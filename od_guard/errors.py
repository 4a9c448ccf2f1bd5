"""Typed errors raised by od_guard.

Every error a user can trigger with bad input is an `OdGuardError`. Each one
carries three parts, which the CLI prints one per line:

* ``what``: what is wrong, in one sentence;
* ``received``: what od_guard was given (a path, a value, a file size);
* ``fix``: what to do about it.
"""

from __future__ import annotations


class OdGuardError(Exception):
  """Base class of every error od_guard raises on bad input."""

  exit_code = 2

  def __init__(self, what: str, *, received: str = "", fix: str = ""):
    self.what = what
    self.received = received
    self.fix = fix
    super().__init__(self.format())

  def format(self) -> str:
    """Returns the three-part message, one part per line."""
    lines = [self.what]
    if self.received:
      lines.append(f"Received: {self.received}")
    if self.fix:
      lines.append(f"Fix: {self.fix}")
    return "\n".join(lines)

  def to_dict(self) -> dict[str, str]:
    return {
      "error": type(self).__name__,
      "what": self.what,
      "received": self.received,
      "fix": self.fix,
    }


class CheckpointNotFoundError(OdGuardError):
  """The path does not name an existing checkpoint."""


class NotACheckpointError(OdGuardError):
  """The path exists but holds something that is not a checkpoint."""


class CorruptCheckpointError(OdGuardError):
  """The file looks like a checkpoint but cannot be decoded (truncated, damaged)."""


class UnsupportedCheckpointError(OdGuardError):
  """The checkpoint is sound, but holds what this operation does not handle
  (e.g. partitioned variables, which `remap` does not rewrite)."""


class UnreadableFileError(OdGuardError):
  """The file exists but the operating system refuses to read it."""


class UsageError(OdGuardError):
  """A command-line or API argument is invalid."""
