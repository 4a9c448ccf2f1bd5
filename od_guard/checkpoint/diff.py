"""Differences between two checkpoints' inventories, by key."""

from __future__ import annotations

import dataclasses

from od_guard import _records
from od_guard.checkpoint import inventory

SCHEMA = "od_guard.diff/1"


@dataclasses.dataclass(frozen=True)
class Changed(_records.Record):
  key: str
  before: str
  after: str


@dataclasses.dataclass(frozen=True)
class CheckpointDiff:
  """What differs between checkpoint A and checkpoint B.

  Attributes:
    a: inventory of the first checkpoint.
    b: inventory of the second checkpoint.
    added: keys only in B.
    removed: keys only in A.
    shape_changed: keys in both whose shapes differ.
    dtype_changed: keys in both whose dtypes differ.
    unchanged: number of keys with equal shape and dtype.
  """

  a: inventory.Inventory
  b: inventory.Inventory
  added: tuple[str, ...]
  removed: tuple[str, ...]
  shape_changed: tuple[Changed, ...]
  dtype_changed: tuple[Changed, ...]
  unchanged: int

  @property
  def identical(self) -> bool:
    return not (self.added or self.removed or self.shape_changed or self.dtype_changed)

  def to_dict(self) -> dict:
    return {
      "schema": SCHEMA,
      "a": {"resolved": self.a.prefix, "format": self.a.format},
      "b": {"resolved": self.b.prefix, "format": self.b.format},
      "identical": self.identical,
      "unchanged": self.unchanged,
      "added": list(self.added),
      "removed": list(self.removed),
      "shape_changed": [c.to_dict() for c in self.shape_changed],
      "dtype_changed": [c.to_dict() for c in self.dtype_changed],
    }


def diff(a: inventory.Inventory, b: inventory.Inventory) -> CheckpointDiff:
  """Compares two inventories key by key."""
  va = a.by_key()
  vb = b.by_key()
  shape_changed = []
  dtype_changed = []
  unchanged = 0
  for key in sorted(va.keys() & vb.keys()):
    x, y = va[key], vb[key]
    if x.shape != y.shape:
      shape_changed.append(
        Changed(key, inventory.format_shape(x.shape), inventory.format_shape(y.shape))
      )
    if x.dtype != y.dtype:
      dtype_changed.append(Changed(key, x.dtype, y.dtype))
    if x.shape == y.shape and x.dtype == y.dtype:
      unchanged += 1
  return CheckpointDiff(
    a=a,
    b=b,
    added=tuple(sorted(vb.keys() - va.keys())),
    removed=tuple(sorted(va.keys() - vb.keys())),
    shape_changed=tuple(shape_changed),
    dtype_changed=tuple(dtype_changed),
    unchanged=unchanged,
  )
