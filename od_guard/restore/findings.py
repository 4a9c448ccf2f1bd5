"""Findings: one problem (or notable fact), its cause and its fix.

Diagnoses produce findings; the policy turns findings into a verdict; the
renderers print them. A finding's `code` is stable (tests, JSON consumers and
policies refer to it); its text is for people.
"""

from __future__ import annotations

import dataclasses
import os

from od_guard import _records
from od_guard.restore import codes as codes_lib

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)


@dataclasses.dataclass(frozen=True)
class Finding(_records.Record):
  """A diagnosis.

  Attributes:
    code: stable identifier, e.g. 'checkpoint_type_mismatch'.
    severity: ERROR (training would fail or start on the wrong weights),
      WARNING (likely a mistake), INFO (worth knowing, expected).
    title: one line: what is wrong.
    detail: what was seen that shows it.
    fix: the concrete change that resolves it ('' for INFO facts).
    stock_outcome: what stock model_main_tf2 does in this situation, when
      known (the error it raises, or that it trains silently).
    data: machine-readable specifics (e.g. a proposed rename map).
  """

  code: str
  severity: str
  title: str
  detail: str = ""
  fix: str = ""
  stock_outcome: str = ""
  data: dict = dataclasses.field(default_factory=dict, compare=False)

  def __post_init__(self) -> None:
    # The test suite sets this, so a code missing from the registry fails there.
    if os.environ.get("OD_GUARD_STRICT_CODES") == "1":
      codes_lib.check(self.code)


def by_severity(findings) -> list[Finding]:
  """Errors first, then warnings, then facts; stable within a severity."""
  order = {s: i for i, s in enumerate(SEVERITIES)}
  return sorted(findings, key=lambda f: order[f.severity])
