"""The finding-code registry: every code od_guard can report.

A finding's `code` is its stable name: tests, JSON consumers, policies
(`Policy.warn_only`) and the decide tables (`od_guard.restore.decide`) refer
to it. Each code is registered here with the severity it is raised at, a
one-line meaning, the module that raises it, the usual fix and what stock
TensorFlow / the OD API / Keras does in the same situation. The findings
reference of the documentation is generated from it. The entries live by
integration: `codes.odapi`, `codes.restore`, `codes.keras`.

    from od_guard.restore import codes
    codes.CODES["checkpoint_type_mismatch"].meaning

`check(code)` raises for an unregistered code; `Finding` calls it when
`OD_GUARD_STRICT_CODES=1` is set (the test suite sets it), so a diagnosis that
invents a code fails its tests instead of reaching users unregistered.
"""

from __future__ import annotations

from collections.abc import Mapping
import difflib

from od_guard.restore.codes import keras as _keras
from od_guard.restore.codes import odapi as _odapi
from od_guard.restore.codes import restore as _restore
from od_guard.restore.codes._code import ERROR
from od_guard.restore.codes._code import INFO
from od_guard.restore.codes._code import VARIES
from od_guard.restore.codes._code import WARNING
from od_guard.restore.codes._code import Code

__all__ = [
  "CODES",
  "ERROR",
  "INFO",
  "VARIES",
  "WARNING",
  "Code",
  "UnregisteredCodeError",
  "check",
  "closest",
]

_TABLE = (*_odapi.CODES, *_restore.CODES, *_keras.CODES)
CODES: Mapping[str, Code] = {c.code: c for c in _TABLE}
if len(CODES) != len(_TABLE):  # a code registered twice is a programming error
  raise RuntimeError("od_guard.restore.codes: a code is registered twice")


class UnregisteredCodeError(ValueError):
  """A finding used a code the registry does not hold (a programming error)."""


def check(code: str) -> str:
  """Returns `code` if registered.

  Raises:
    UnregisteredCodeError: it is not, naming the closest registered code.
  """
  if code in CODES:
    return code
  close = difflib.get_close_matches(code, CODES, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise UnregisteredCodeError(
    f"Finding code {code!r} is not registered in od_guard.restore.codes.{hint}"
  )


def closest(code: str) -> str | None:
  """The registered code nearest to `code` (for usage errors), or None."""
  close = difflib.get_close_matches(code, CODES, n=1)
  return close[0] if close else None
