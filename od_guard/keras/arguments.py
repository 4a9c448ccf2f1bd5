"""Checks of the arguments od_guard's Keras callbacks take.

The callbacks check them in `__init__`, as Keras checks its own, so that a
wrong one stops the script where the callback is made, before `fit` starts,
naming the argument and echoing what it received (``Received: mode='strict'``).
"""

from __future__ import annotations

from collections.abc import Iterable
import numbers
import os
from typing import Any

from od_guard import errors


def path(name: str, value: Any, *, optional: bool = False) -> str | None:
  """`value` as a path string (None passes when `optional`).

  Raises:
    UsageError: `value` is not a non-empty str or os.PathLike.
  """
  if value is None and optional:
    return None
  if isinstance(value, os.PathLike):
    value = os.fspath(value)
  if not isinstance(value, str) or not value:
    raise errors.UsageError(
      f"Argument `{name}` must be a non-empty path" + (" or None." if optional else "."),
      received=f"{name}={value!r}",
      fix=f"Pass `{name}` as a string, e.g. {name}='logs'.",
    )
  return value


def strings(name: str, value: Iterable[str], *, example: str) -> tuple[str, ...]:
  """`value`, a list of strings, as a tuple.

  Raises:
    UsageError: `value` is one string (which would be read as its characters),
      or holds something else than strings.
  """
  if isinstance(value, (str, bytes)):
    raise errors.UsageError(
      f"Argument `{name}` must be a list of strings, not a single string.",
      received=f"{name}={value!r}",
      fix=f"Wrap it in a list: {name}=[{value!r}].",
    )
  try:
    items = tuple(value)
  except TypeError:
    items = None
  if items is None or not all(isinstance(v, str) for v in items):
    raise errors.UsageError(
      f"Argument `{name}` must be a list of strings.",
      received=f"{name}={value!r}",
      fix=f"Write e.g. {name}=[{example!r}].",
    )
  return items


def shape(name: str, value: Any) -> tuple[int | None, ...] | None:
  """`value`, a shape (dimensions that are positive integers or None), as a
  tuple; None passes.

  Raises:
    UsageError: `value` is not a sequence of such dimensions.
  """
  if value is None:
    return None
  try:
    dims = None if isinstance(value, (str, bytes)) else tuple(value)
  except TypeError:
    dims = None
  valid = dims is not None and all(
    d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0)
    for d in dims
  )
  if not valid or not dims:
    raise errors.UsageError(
      f"Argument `{name}` must be a shape: positive whole numbers or None, batch first.",
      received=f"{name}={value!r}",
      fix=f"Write e.g. {name}=(None, 64, 64, 3).",
    )
  return tuple(None if d is None else int(d) for d in dims)


def seconds(name: str, value: Any) -> float:
  """`value`, a positive number of seconds, as a float.

  Raises:
    UsageError: `value` is not a number > 0.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
    raise errors.UsageError(
      f"Argument `{name}` must be a number of seconds > 0.",
      received=f"{name}={value!r}",
      fix=f"Write e.g. {name}=300.",
    )
  return float(value)
