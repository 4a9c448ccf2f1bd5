"""The JSON form of od_guard's plain result records."""

from __future__ import annotations

import dataclasses
from typing import Any


class Record:
  """Mixin for a frozen dataclass whose JSON form is its fields as they are.

  `to_dict` is `dataclasses.asdict`: nested records become dicts, tuples stay
  tuples. A record that renders a field (a shape as a list, a schema name)
  writes its own `to_dict`.
  """

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def fields(record: Any) -> dict[str, Any]:
  """A dataclass instance's fields by name, their values as they are.

  Unlike `dataclasses.asdict`, nested records stay records: this is for handing
  one record's fields on to another record's constructor.
  """
  return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
