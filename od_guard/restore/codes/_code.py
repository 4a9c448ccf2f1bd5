"""The registry's record: `Code`, and the severities codes are raised at."""

from __future__ import annotations

import dataclasses

ERROR = "error"
WARNING = "warning"
INFO = "info"
# Raised at the error severity in some contexts and a lower one in others
# (e.g. an input path is an error for training, a warning for a repo check).
VARIES = "varies"
# What the OD API says when a restore binds nothing it asks for.
UNBOUND = "AssertionError: Found N Python objects that were not bound to checkpointed values"


@dataclasses.dataclass(frozen=True)
class Code:
  """One registered finding code.

  Attributes:
    code: the stable identifier.
    severity: the severity it is raised at (ERROR, WARNING, INFO or VARIES).
    meaning: one line: what the finding says.
    layer: the module that raises it.
    fix: the usual fix ('' for facts).
    stock: what stock TF / the OD API / Keras does in this situation ('' when
      not measured or not applicable).
  """

  code: str
  severity: str
  meaning: str
  layer: str
  fix: str = ""
  stock: str = ""

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)
