"""Predicts what a `tf.train.Checkpoint(...).restore(path)` will bind.

TensorFlow restores object-based checkpoints by walking two graphs in step: the
checkpoint's object graph from its root, and the live objects from the root
handed to `tf.train.Checkpoint(**roots)`. A child is followed when both sides
have it under the same local name; a variable takes the value its checkpoint
node names. What the walk never reaches stays as initialised (live side) or goes
unused (checkpoint side). TF1 name-based checkpoints are restored by variable
name instead.

This module repeats that walk on plain data, so it needs no TensorFlow and runs
before any value is read:

* the live side is a `LiveGraph`, captured from real objects by `live_graph`;
* the checkpoint side is the object graph when the data shard is there, else a
  tree rebuilt from the keys of the index (TF's keys are the breadth-first
  paths of the same graph).

`match` returns a `RestorePrediction`: restored, missing, not requested, unused,
shape and dtype mismatches, and parameter-weighted coverage per component.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
import dataclasses
import math

from od_guard.checkpoint import components
from od_guard.checkpoint import inventory
from od_guard.checkpoint import keys as checkpoint_keys

SCHEMA = "od_guard.restore_report/1"


# ---------------------------------------------------------------------------
# The live side, as plain data.


@dataclasses.dataclass(frozen=True)
class LiveVariable:
  """A variable of the model, as training will see it.

  Attributes:
    uid: identity of the variable object within one capture.
    path: its object path from the model root (e.g. 'model/_box_predictor/...').
    name: the TF variable name without ':0' (used by name-based restores).
    shape: its shape.
    dtype: numpy-style dtype name.
    component: the detector component of `path`.
  """

  uid: int
  path: str
  name: str
  shape: tuple[int, ...]
  dtype: str
  component: str

  @property
  def num_params(self) -> int:
    return math.prod(self.shape) if self.shape else 1


@dataclasses.dataclass(frozen=True)
class LiveNode:
  """A trackable object of the restore roots: its children and, for a
  variable, the variable's uid."""

  children: tuple[tuple[str, int], ...]
  variable_uid: int | None = None


@dataclasses.dataclass(frozen=True)
class LiveGraph:
  """The objects a restore would walk, and every variable of the model.

  Attributes:
    nodes: node 0 is the virtual root whose children are the restore roots
      (the keyword arguments of `tf.train.Checkpoint`).
    variables: every variable of the whole model by uid, including those
      outside the restore roots (they stay freshly initialised by design).
  """

  nodes: tuple[LiveNode, ...]
  variables: dict[int, LiveVariable]

  def reachable_variable_uids(self) -> set[int]:
    seen = {0}
    queue = collections.deque([0])
    uids = set()
    while queue:
      node = self.nodes[queue.popleft()]
      if node.variable_uid is not None:
        uids.add(node.variable_uid)
      for _, child in node.children:
        if child not in seen:
          seen.add(child)
          queue.append(child)
    return uids


# ---------------------------------------------------------------------------
# The checkpoint side.


@dataclasses.dataclass
class _CkptNode:
  children: dict[str, int] = dataclasses.field(default_factory=dict)
  attributes: dict[str, str] = dataclasses.field(default_factory=dict)


def _tree_from_object_graph(proto) -> list[_CkptNode]:
  nodes = []
  for n in proto.nodes:
    nodes.append(
      _CkptNode(
        children={c.local_name: c.node_id for c in n.children},
        attributes={a.name: a.checkpoint_key for a in n.attributes},
      )
    )
  return nodes


def _tree_from_keys(keys: Iterable[str]) -> list[_CkptNode]:
  nodes = [_CkptNode()]
  for key in keys:
    if key == inventory.OBJECT_GRAPH_KEY or checkpoint_keys.OPTIMIZER_SLOT_INFIX in key:
      continue
    path, attribute = checkpoint_keys.split_key(key)
    if not attribute:
      continue
    node = 0
    for part in path:
      nxt = nodes[node].children.get(part)
      if nxt is None:
        nxt = len(nodes)
        nodes[node].children[part] = nxt
        nodes.append(_CkptNode())
      node = nxt
    nodes[node].attributes[attribute] = key
  return nodes


def checkpoint_paths(inv: inventory.Inventory, *, limit: int = 4) -> dict[str, list[str]]:
  """Every object path (up to `limit`) that leads to each checkpoint value.

  A key names one path only, the shortest; the object graph knows the others
  (Keras 3 keys trainable weights under the optimizer that tracks them, while
  the model reaches them through its layers). Without an object graph each
  value has its key's path only.
  """
  if inv.object_graph_proto is None:
    return {k: ["/".join(checkpoint_keys.split_key(k)[0])] for k in inv.by_key()}
  tree = _tree_from_object_graph(inv.object_graph_proto)
  paths: dict[int, list[str]] = {0: [""]}
  queue = collections.deque([0])
  while queue:
    node = queue.popleft()
    for name, child in tree[node].children.items():
      fresh = child not in paths
      known = paths.setdefault(child, [])
      for p in paths[node]:
        if len(known) < limit:
          known.append(f"{p}/{name}" if p else name)
      if fresh:
        queue.append(child)
  out: dict[str, list[str]] = {}
  for node, n in enumerate(tree):
    key = n.attributes.get(checkpoint_keys.VARIABLE_VALUE)
    if key is not None:
      out[key] = paths.get(node, [])
  return out


# ---------------------------------------------------------------------------
# The report.


class _VariableRecord:
  """Mixin for the records of a live variable (dataclasses with a `shape`)."""

  def to_dict(self) -> dict:
    """The fields in order, the shape as a list."""
    out = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
    out["shape"] = list(self.shape)
    return out


@dataclasses.dataclass(frozen=True)
class Binding(_VariableRecord):
  """A live variable and the checkpoint value it takes."""

  path: str
  key: str
  shape: tuple[int, ...]
  dtype: str
  component: str


@dataclasses.dataclass(frozen=True)
class Unbound(_VariableRecord):
  """A live variable that keeps its initial value."""

  path: str
  shape: tuple[int, ...]
  dtype: str
  component: str


@dataclasses.dataclass(frozen=True)
class Mismatch:
  """A binding whose checkpoint value cannot be assigned (shape or dtype).

  Attributes:
    checkpoint, model: the two shapes (tuples) of a shape mismatch, or the two
      dtype names of a dtype mismatch. Shapes stay tuples until rendered
      (`to_dict` writes them as Python prints them: '(3, 3)').
  """

  path: str
  key: str
  checkpoint: tuple[int, ...] | str
  model: tuple[int, ...] | str
  component: str

  def to_dict(self) -> dict:
    def text(x: tuple[int, ...] | str) -> str:
      return x if isinstance(x, str) else inventory.format_shape(x)

    return {
      "path": self.path,
      "key": self.key,
      "checkpoint": text(self.checkpoint),
      "model": text(self.model),
      "component": self.component,
    }


@dataclasses.dataclass(frozen=True)
class Coverage:
  """Parameter-weighted restore coverage of one component."""

  component: str
  restored_params: int
  total_params: int
  restored_tensors: int
  total_tensors: int

  @property
  def fraction(self) -> float:
    return self.restored_params / self.total_params if self.total_params else 0.0

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["fraction"] = round(self.fraction, 6)
    return d


@dataclasses.dataclass(frozen=True)
class RestorePrediction:
  """What a restore will do, predicted from metadata.

  Attributes:
    mode: 'object_graph' (walked the checkpoint's object graph), 'keys'
      (object graph unavailable: walked a tree rebuilt from index keys), or
      'names' (TF1 name-based checkpoint: matched by variable name).
    restored: live variables that take a checkpoint value.
    missing: live variables inside the restore roots with no checkpoint value;
      they stay freshly initialised, and `assert_existing_objects_matched`
      fails on them.
    not_requested: live variables outside the restore roots (stay freshly
      initialised by design, e.g. heads under fine_tune_checkpoint_type
      'detection').
    unused: checkpoint keys of model values that nothing takes.
    unused_other: unused keys of optimizer slots, optimizer state, bookkeeping.
    shape_mismatches: bindings whose shapes differ (the restore raises).
    dtype_mismatches: bindings whose dtypes differ (the restore raises).
    coverage: per component, over the whole model.
    unmatched_objects: variables of the restore roots the walk did not reach:
      the N of TF's "Found N Python objects that were not bound to
      checkpointed values" (`assert_existing_objects_matched`).
  """

  mode: str
  restored: tuple[Binding, ...]
  missing: tuple[Unbound, ...]
  not_requested: tuple[Unbound, ...]
  unused: tuple[str, ...]
  unused_other: tuple[str, ...]
  shape_mismatches: tuple[Mismatch, ...]
  dtype_mismatches: tuple[Mismatch, ...]
  coverage: tuple[Coverage, ...]
  unmatched_objects: int = 0

  def requested_components(self) -> frozenset[str]:
    """Components the restore asks for (those with a variable inside the roots)."""
    asked = {b.component for b in self.restored}
    asked |= {u.component for u in self.missing}
    asked |= {m.component for m in self.shape_mismatches}
    return frozenset(asked)

  def coverage_of(self, component: str) -> Coverage | None:
    return next((c for c in self.coverage if c.component == component), None)

  @property
  def total(self) -> Coverage:
    return Coverage(
      "total",
      sum(c.restored_params for c in self.coverage),
      sum(c.total_params for c in self.coverage),
      sum(c.restored_tensors for c in self.coverage),
      sum(c.total_tensors for c in self.coverage),
    )

  def to_dict(self) -> dict:
    return {
      "schema": SCHEMA,
      "mode": self.mode,
      "counts": {
        "restored": len(self.restored),
        "missing": len(self.missing),
        "not_requested": len(self.not_requested),
        "unused": len(self.unused),
        "unused_other": len(self.unused_other),
        "shape_mismatches": len(self.shape_mismatches),
        "dtype_mismatches": len(self.dtype_mismatches),
        "unmatched_objects": self.unmatched_objects,
      },
      "coverage": [c.to_dict() for c in self.coverage] + [self.total.to_dict()],
      "restored": [b.to_dict() for b in self.restored],
      "missing": [u.to_dict() for u in self.missing],
      "not_requested": [u.to_dict() for u in self.not_requested],
      "unused": list(self.unused),
      "unused_other": list(self.unused_other),
      "shape_mismatches": [m.to_dict() for m in self.shape_mismatches],
      "dtype_mismatches": [m.to_dict() for m in self.dtype_mismatches],
    }


def _walk(live: LiveGraph, tree: list[_CkptNode]) -> tuple[dict[int, str], set[int], set[int]]:
  """Returns (variable uid -> checkpoint key, reached live nodes, reached ckpt nodes)."""
  bound: dict[int, str] = {}
  reached_live: set[int] = {0}
  reached_ckpt: set[int] = {0}
  seen = {(0, 0)}
  queue = collections.deque([(0, 0)])
  while queue:
    live_id, ckpt_id = queue.popleft()
    node = live.nodes[live_id]
    ckpt = tree[ckpt_id]
    if node.variable_uid is not None and checkpoint_keys.VARIABLE_VALUE in ckpt.attributes:
      bound.setdefault(node.variable_uid, ckpt.attributes[checkpoint_keys.VARIABLE_VALUE])
    for name, child in node.children:
      ckpt_child = ckpt.children.get(name)
      if ckpt_child is None:
        continue
      reached_live.add(child)
      reached_ckpt.add(ckpt_child)
      if (child, ckpt_child) not in seen:
        seen.add((child, ckpt_child))
        queue.append((child, ckpt_child))
  return bound, reached_live, reached_ckpt


def _by_name(live: LiveGraph, uids: set[int], keys: Mapping[str, str]) -> dict[int, str]:
  """The checkpoint key of each variable, by its TF name (`keys`: name -> key)."""
  return {uid: keys[live.variables[uid].name] for uid in uids if live.variables[uid].name in keys}


def _bind(
  live: LiveGraph,
  inv: inventory.Inventory,
  entries: Mapping,
  requested: set[int],
  names: Mapping[str, str] | None,
) -> tuple[str, dict[int, str], int]:
  """(the match mode, the checkpoint key of each bound variable, how many
  variables of the roots the walk did not reach)."""
  if inv.format == inventory.TF1_NAME_BASED:
    return "names", _by_name(live, requested, names or {k: k for k in entries}), 0
  if inv.object_graph_proto is not None:
    mode, tree = "object_graph", _tree_from_object_graph(inv.object_graph_proto)
  else:
    mode, tree = "keys", _tree_from_keys(entries)
  bound, reached_live, _ = _walk(live, tree)
  # `assert_existing_objects_matched` counts the objects with values to
  # restore (variables) that the walk did not reach; layers and other
  # containers do not count.
  unmatched_objects = sum(
    1 for i, n in enumerate(live.nodes) if n.variable_uid is not None and i not in reached_live
  )
  return mode, bound, unmatched_objects


def match(
  live: LiveGraph, inv: inventory.Inventory, *, names: Mapping[str, str] | None = None
) -> RestorePrediction:
  """Predicts the restore of checkpoint `inv` into the live objects `live`.

  Args:
    live: the captured restore roots and model variables.
    inv: the checkpoint's inventory, read with
      ``object_graph=inventory.OBJECT_GRAPH_FULL`` so that the walk follows
      the object graph; without it the tree is rebuilt from the index keys.
    names: for a TF1 name-based checkpoint, the checkpoint key of each TF
      variable name (e.g. after rename rules); default: a key is the name.

  Returns:
    The restore report.
  """
  entries = inv.by_key()
  requested = live.reachable_variable_uids()
  mode, bound, unmatched_objects = _bind(live, inv, entries, requested, names)
  restored, shape_mm, dtype_mm = [], [], []
  restored_uids: set[int] = set()
  for uid, key in sorted(bound.items(), key=lambda kv: live.variables[kv[0]].path):
    v = live.variables[uid]
    e = entries.get(key)
    if e is None:  # named by the object graph but absent from the index
      continue
    if tuple(e.shape) != v.shape:
      shape_mm.append(Mismatch(v.path, key, tuple(e.shape), tuple(v.shape), v.component))
    elif e.dtype != v.dtype:
      dtype_mm.append(Mismatch(v.path, key, e.dtype, v.dtype, v.component))
    else:
      restored.append(Binding(v.path, key, v.shape, v.dtype, v.component))
      restored_uids.add(uid)
  missing = tuple(
    Unbound(v.path, v.shape, v.dtype, v.component)
    for v in sorted((live.variables[u] for u in requested - bound.keys()), key=lambda v: v.path)
  )
  not_requested = tuple(
    Unbound(v.path, v.shape, v.dtype, v.component)
    for v in sorted(
      (v for u, v in live.variables.items() if u not in requested), key=lambda v: v.path
    )
  )
  used = set(bound.values())
  unused = tuple(
    sorted(k for k, e in entries.items() if k not in used and e.kind == inventory.MODEL)
  )
  unused_other = tuple(
    sorted(k for k, e in entries.items() if k not in used and e.kind != inventory.MODEL)
  )
  return RestorePrediction(
    mode=mode,
    restored=tuple(restored),
    missing=missing,
    not_requested=not_requested,
    unused=unused,
    unused_other=unused_other,
    shape_mismatches=tuple(shape_mm),
    dtype_mismatches=tuple(dtype_mm),
    coverage=_coverage(
      (v.component, v.num_params, uid in restored_uids) for uid, v in live.variables.items()
    ),
    unmatched_objects=unmatched_objects,
  )


def _coverage(variables: Iterable[tuple[str, int, bool]]) -> tuple[Coverage, ...]:
  """Coverage per component from (component, parameters, restored) triples."""
  totals: dict[str, list[int]] = {}
  for component, params, restored in variables:
    t = totals.setdefault(component, [0, 0, 0, 0])
    t[1] += params
    t[3] += 1
    if restored:
      t[0] += params
      t[2] += 1
  return tuple(Coverage(c, *totals[c]) for c in components.ALL if c in totals)


def match_keys(
  expected: inventory.Inventory, checkpoint: inventory.Inventory, *, by_order: bool = False
) -> RestorePrediction:
  """Predicts `model.load_weights(file)` for Keras weight files.

  Args:
    expected: the inventory of the file the model's own `save_weights` writes
      (the layout `load_weights` expects).
    checkpoint: the weights file to load.
    by_order: pair layers by position, as tf-keras loads Keras 2 HDF5 files
      (by_name=False); else pair by key, as Keras 3 loads `.weights.h5`.
  """
  want = [v for v in expected.variables if v.kind == inventory.MODEL]
  have = {v.key: v for v in checkpoint.variables if v.kind == inventory.MODEL}
  if by_order:
    pairs = dict(zip(expected.weight_order, checkpoint.weight_order))
  else:
    pairs = {v.key: v.key for v in want if v.key in have}
  restored, missing, shape_mm, dtype_mm = [], [], [], []
  restored_keys: set[str] = set()
  for v in want:
    key = pairs.get(v.key)
    e = have.get(key) if key else None
    if e is None:
      missing.append(Unbound(v.key, v.shape, v.dtype, v.component))
    elif tuple(e.shape) != tuple(v.shape):
      shape_mm.append(Mismatch(v.key, key, tuple(e.shape), tuple(v.shape), v.component))
    elif e.dtype != v.dtype:
      dtype_mm.append(Mismatch(v.key, key, e.dtype, v.dtype, v.component))
    else:
      restored.append(Binding(v.key, key, tuple(v.shape), v.dtype, v.component))
      restored_keys.add(v.key)
  used = set(pairs.values()) if by_order else set(pairs)
  return RestorePrediction(
    mode="keras_file_by_order" if by_order else "keras_file_by_key",
    restored=tuple(restored),
    missing=tuple(missing),
    not_requested=(),
    unused=tuple(sorted(k for k in have if k not in used)),
    unused_other=tuple(sorted(v.key for v in checkpoint.variables if v.kind != inventory.MODEL)),
    shape_mismatches=tuple(shape_mm),
    dtype_mismatches=tuple(dtype_mm),
    coverage=_coverage((v.component, v.num_params, v.key in restored_keys) for v in want),
  )
