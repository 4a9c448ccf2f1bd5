"""Captures live TensorFlow objects into a `restore_match.LiveGraph`.

This is the one place the matcher touches TensorFlow objects: it walks the
trackable children of the restore roots (what `tf.train.Checkpoint(**roots)`
would walk) and of the whole model (to know every variable that will exist,
and its path), and records names, shapes and dtypes. No value is read.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from od_guard.checkpoint import components
from od_guard.restore import matching as restore_match


def _children(obj: Any) -> list[tuple[str, Any]]:
  get = getattr(obj, "_trackable_children", None)
  if get is None:
    return []
  try:
    children = get()
  except TypeError:  # some wrappers want save_type spelled out
    children = get(save_type="checkpoint")
  return list(children.items())


def is_variable(obj: Any) -> bool:
  """Whether `obj` checkpoints as one saved value: a `tf.Variable`, or a Keras 3
  variable (which wraps one)."""
  import tensorflow as tf

  if isinstance(obj, tf.Variable):
    return True
  # Keras 3 variables wrap a tf.Variable and checkpoint as one value.
  return any(
    c.__name__ == "Variable" and c.__module__.startswith("keras") for c in type(obj).__mro__
  )


def _dtype_name(dtype: Any) -> str:
  name = getattr(dtype, "name", None) or str(dtype)
  return name.replace("_ref", "")


def _shape(obj: Any) -> tuple[int, ...]:
  shape = obj.shape
  as_list = getattr(shape, "as_list", None)
  dims = as_list() if as_list else list(shape)
  return tuple(-1 if d is None else int(d) for d in dims)


def _variable_name(obj: Any) -> str:
  name = getattr(obj, "path", None) if not hasattr(obj, "_shared_name") else None
  name = getattr(obj, "_shared_name", None) or name or getattr(obj, "name", "")
  return name[:-2] if name.endswith(":0") else name


def walk(roots: Mapping[str, Any], exclude: Sequence[str] = ()) -> Iterator[tuple[Any, str]]:
  """Walks what `tf.train.Checkpoint(**roots)` would save.

  Args:
    roots: the keyword arguments of the `tf.train.Checkpoint`.
    exclude: object-path prefixes whose subtrees are skipped.

  Yields:
    (object, path) for every object reachable from `roots`, breadth first,
    each object once, in TF's own traversal order.
  """
  prefixes = tuple(p.rstrip("/") for p in exclude)

  def excluded(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)

  seen: set[int] = set()
  queue = collections.deque((obj, name) for name, obj in roots.items() if not excluded(name))
  for obj, _ in queue:
    seen.add(id(obj))
  while queue:
    obj, path = queue.popleft()
    yield obj, path
    for name, child in _children(obj):
      child_path = f"{path}/{name}"
      if id(child) not in seen and not excluded(child_path):
        seen.add(id(child))
        queue.append((child, child_path))


def variables(roots: Mapping[str, Any], exclude: Sequence[str] = ()) -> dict[int, Any]:
  """Every variable reachable from `roots`, by `id()` (a `LiveVariable.uid`).

  Args:
    roots: the keyword arguments of the `tf.train.Checkpoint`.
    exclude: object-path prefixes whose subtrees are skipped.

  Returns:
    {id(variable): variable}, in `walk` order.
  """
  return {id(obj): obj for obj, _ in walk(roots, exclude) if is_variable(obj)}


# The names these functions had before they were public; callers may still use them.


def capture(
  roots: Mapping[str, Any], *, model: Mapping[str, Any] | None = None, exclude: Sequence[str] = ()
) -> restore_match.LiveGraph:
  """Captures what a restore into `roots` would walk.

  Args:
    roots: the keyword arguments a `tf.train.Checkpoint` is built from for the
      restore (e.g. the OD API's `restore_from_objects(...)` map).
    model: the whole model under the root names its own checkpoints use (e.g.
      ``{'model': detection_model}``), so that variables outside `roots` are
      known and every variable gets its full path. Defaults to `roots`.
    exclude: object-path prefixes the restore leaves out (their variables
      count as not requested).

  Returns:
    The live graph.
  """
  variables: dict[int, restore_match.LiveVariable] = {}

  def add(obj: Any, path: str) -> None:
    if id(obj) not in variables:
      variables[id(obj)] = restore_match.LiveVariable(
        uid=id(obj),
        path=path,
        name=_variable_name(obj),
        shape=_shape(obj),
        dtype=_dtype_name(obj.dtype),
        component=components.classify(path),
      )

  for obj, path in walk(model if model is not None else roots):
    if is_variable(obj):
      add(obj, path)

  index: dict[int, int] = {}
  objects: list[Any] = [None]
  order = list(walk(roots, exclude))
  for obj, path in order:
    index[id(obj)] = len(objects)
    objects.append(obj)
    if is_variable(obj):
      add(obj, path)
  # A root that is itself excluded has no node: the restore does not reach it.
  nodes = [
    restore_match.LiveNode(
      children=tuple((name, index[id(obj)]) for name, obj in roots.items() if id(obj) in index)
    )
  ]
  for obj in objects[1:]:
    nodes.append(
      restore_match.LiveNode(
        children=tuple(
          (name, index[id(child)]) for name, child in _children(obj) if id(child) in index
        ),
        variable_uid=id(obj) if is_variable(obj) else None,
      )
    )
  return restore_match.LiveGraph(nodes=tuple(nodes), variables=variables)
