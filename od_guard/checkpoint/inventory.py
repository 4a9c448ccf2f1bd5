"""A checkpoint's inventory: every saved value's name, shape, dtype and size.

`read_inventory` is the single reader every od_guard feature uses. It reads
metadata only (the tensor-bundle index, the object graph, HDF5 dataset headers)
and never tensor values, so its memory grows with the number of variables, not
with the checkpoint's size. Reading a TF checkpoint imports no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses
import gc
import math
import re
from typing import NamedTuple

from od_guard import errors
from od_guard.checkpoint import components
from od_guard.checkpoint import fileio
from od_guard.checkpoint import object_graph as object_graph_lib
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import tensor_bundle

SCHEMA = "od_guard.inventory/1"

# Formats.
TF2_OBJECT_BASED = "tf2_object_based"
TF1_NAME_BASED = "tf1_name_based"
SAVED_MODEL = "saved_model"
KERAS3_WEIGHTS = "keras3_weights"
KERAS2_HDF5 = "keras2_hdf5"

# Kinds of saved value.
MODEL = "model"
OPTIMIZER_SLOT = "optimizer_slot"
OPTIMIZER_STATE = "optimizer_state"
BOOKKEEPING = "bookkeeping"
KINDS = (MODEL, OPTIMIZER_SLOT, OPTIMIZER_STATE, BOOKKEEPING)

# Data-shard states.
SHARDS_PRESENT = "present"
SHARDS_MISSING = "missing"
SHARDS_NOT_APPLICABLE = "n/a"

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

# How much of the object graph to read.
OBJECT_GRAPH_NONE = "none"
OBJECT_GRAPH_SUMMARY = "summary"
OBJECT_GRAPH_FULL = "full"
_ATTRIBUTES = "/.ATTRIBUTES/"
_SLOT = "/.OPTIMIZER_SLOT/"
_SLOT_MARK = ".OPTIMIZER_SLOT"
_OPTIMIZER_ROOTS = frozenset({"optimizer", "_optimizer", "optimizer_state"})
_ESCAPE = re.compile(r"\.(.)")
_BOOKKEEPING_NAMES = frozenset(
  {
    "save_counter",
    "step",
    "global_step",
    "iterations",
    "iter",
    "epoch",
    "_CHECKPOINTABLE_OBJECT_GRAPH",
    "_SAVEABLE_OBJECT_GRAPH",
  }
)
_TF1_SLOT_SUFFIXES = (
  "Momentum",
  "RMSProp",
  "RMSProp_1",
  "Adam",
  "Adam_1",
  "Adagrad",
  "Ftrl",
  "Ftrl_1",
  "ExponentialMovingAverage",
  "AdamW",
  "AdamW_1",
  "Adadelta",
  "Adadelta_1",
)
_TF1_OPTIMIZER_STATE = re.compile(r"^(beta1_power|beta2_power|learning_rate)(_\d+)?$")


def format_shape(shape: tuple[int, ...]) -> str:
  """A shape as Python prints a tuple: '(3, 3)', '(4,)', '()'."""
  return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def unescape(component: str) -> str:
  """Undoes TF's escaping of an object-path component ('..' -> '.', '.S' -> '/')."""
  return _ESCAPE.sub(lambda m: "/" if m.group(1) == "S" else m.group(1), component)


def split_key(key: str) -> tuple[tuple[str, ...], str]:
  """Splits a TF2 checkpoint key into its decoded object path and attribute.

  ``model/_box..predictor/kernel/.ATTRIBUTES/VARIABLE_VALUE`` gives
  (('model', '_box.predictor', 'kernel'), 'VARIABLE_VALUE').
  """
  head, sep, attribute = key.rpartition(_ATTRIBUTES)
  if not sep:
    head, attribute = key, ""
  if "." not in head:  # nothing escaped: the common case
    return tuple(head.split("/")), attribute
  return tuple(unescape(c) for c in head.split("/")), attribute


class Variable(NamedTuple):
  """One saved value.

  A NamedTuple rather than a dataclass: checkpoints hold tens of thousands of
  values and this record is built for each.

  Attributes:
    key: the key in the checkpoint (`tf.train.list_variables` name, or the
      HDF5 dataset path for Keras files).
    path: the decoded object path, '/'-joined (for TF1 checkpoints the name).
    attribute: the TF2 attribute name (``VARIABLE_VALUE`` ...), or "".
    kind: MODEL, OPTIMIZER_SLOT, OPTIMIZER_STATE or BOOKKEEPING.
    component: for model values, the detector component (see `components`).
    shape: the tensor shape.
    dtype: numpy-style dtype name.
    nbytes: bytes the value takes on disk.
    slot_of: for an optimizer slot, the path of the variable it belongs to.
  """

  key: str
  path: str
  attribute: str
  kind: str
  component: str
  shape: tuple[int, ...]
  dtype: str
  nbytes: int
  slot_of: str = ""

  @property
  def num_params(self) -> int:
    return math.prod(self.shape) if self.shape else 1

  def to_dict(self) -> dict:
    d = self._asdict()
    d["shape"] = list(self.shape)
    d["num_params"] = self.num_params
    return d


@dataclasses.dataclass(frozen=True)
class Totals:
  tensors: int = 0
  params: int = 0
  bytes: int = 0

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def sum_by(variables: Iterable[Variable], key) -> dict:
  """Totals of `variables` grouped by key(variable), in one pass."""
  acc: dict = {}
  for v in variables:
    k = key(v)
    a = acc.get(k)
    if a is None:
      a = acc[k] = [0, 0, 0]
    a[0] += 1
    a[1] += math.prod(v.shape) if v.shape else 1
    a[2] += v.nbytes
  return {k: Totals(*a) for k, a in acc.items()}


@dataclasses.dataclass(frozen=True)
class Summary:
  """Totals of an inventory: overall, per kind, per component (model values
  only), and per path prefix."""

  totals: Totals
  by_kind: dict[str, Totals]
  by_component: dict[str, Totals]
  groups: list[tuple[str, Totals]]


@dataclasses.dataclass(frozen=True)
class Inventory:
  """Everything od_guard knows about a checkpoint without reading its values.

  Attributes:
    resolved: how the user's path was resolved.
    format: TF2_OBJECT_BASED, TF1_NAME_BASED, SAVED_MODEL, KERAS3_WEIGHTS or
      KERAS2_HDF5.
    variables: every saved value except the object graph itself, by key.
    data_shards: SHARDS_PRESENT, SHARDS_MISSING or SHARDS_NOT_APPLICABLE.
    missing_shards: the data-shard files that are absent.
    object_graph: a summary of the object graph, or None where it is absent
      (TF1, Keras files) or unreadable (missing data shard).
    object_graph_proto: the parsed `TrackableObjectGraph` when read with
      OBJECT_GRAPH_FULL, else None.
    num_shards: data shards the index names (0 for Keras files).
    notes: facts worth telling the user (how the path resolved, what could
      not be read).
  """

  resolved: checkpoint_path.Resolved
  format: str
  variables: tuple[Variable, ...]
  data_shards: str
  missing_shards: tuple[str, ...] = ()
  object_graph: object_graph_lib.ObjectGraphSummary | None = None
  object_graph_proto: object | None = dataclasses.field(default=None, compare=False, repr=False)
  num_shards: int = 0
  notes: tuple[str, ...] = ()

  @property
  def prefix(self) -> str:
    return self.resolved.path

  def of_kind(self, kind: str) -> tuple[Variable, ...]:
    return tuple(v for v in self.variables if v.kind == kind)

  def by_key(self) -> dict[str, Variable]:
    return {v.key: v for v in self.variables}

  def totals(self, variables: Iterable[Variable] | None = None) -> Totals:
    if variables is None:
      return self.summarize().totals
    return sum_by(variables, lambda v: None).get(None, Totals())

  def totals_by_kind(self) -> dict[str, Totals]:
    return self.summarize().by_kind

  def totals_by_component(self) -> dict[str, Totals]:
    """Totals of model values per detector component (empty ones left out)."""
    return self.summarize().by_component

  def groups(self, depth: int) -> list[tuple[str, Totals]]:
    """Totals per path prefix of `depth` components, in path order."""
    return self.summarize(depth).groups

  def summarize(self, depth: int = 1) -> Summary:
    """All totals in one pass over the variables."""
    acc: dict[tuple[str, str, str], list[int]] = {}
    prod = math.prod
    for v in self.variables:
      path = v.path
      end = -1
      for _ in range(depth):  # the prefix of `depth` components, without a split
        end = path.find("/", end + 1)
        if end < 0:
          break
      key = (v.kind, v.component, path if end < 0 else path[:end])
      a = acc.get(key)
      if a is None:
        a = acc[key] = [0, 0, 0]
      a[0] += 1
      a[1] += prod(v.shape) if v.shape else 1
      a[2] += v.nbytes

    def fold(select) -> dict:
      out: dict = {}
      for key, a in acc.items():
        k = select(key)
        if k is None:
          continue
        b = out.setdefault(k, [0, 0, 0])
        b[0] += a[0]
        b[1] += a[1]
        b[2] += a[2]
      return {k: Totals(*b) for k, b in out.items()}

    by_kind = fold(lambda k: k[0])
    by_component = fold(lambda k: k[1] if k[0] == MODEL else None)
    return Summary(
      totals=fold(lambda k: "all").get("all", Totals()),
      by_kind={k: by_kind.get(k, Totals()) for k in KINDS},
      by_component={c: by_component[c] for c in components.ALL if c in by_component},
      groups=sorted(fold(lambda k: k[2]).items()),
    )

  def to_dict(self, *, depth: int = 3, with_variables: bool = False) -> dict:
    """The JSON form (schema ``od_guard.inventory/1``, see docs/json_schema.md)."""
    summary = self.summarize(depth)
    d = {
      "schema": SCHEMA,
      "given": self.resolved.given,
      "resolved": self.resolved.path,
      "saved_model": self.resolved.saved_model,
      "format": self.format,
      "data_shards": self.data_shards,
      "missing_shards": list(self.missing_shards),
      "num_shards": self.num_shards,
      "object_graph": self.object_graph.to_dict() if self.object_graph else None,
      "notes": list(self.notes),
      "totals": summary.totals.to_dict(),
      "totals_by_kind": {k: t.to_dict() for k, t in summary.by_kind.items()},
      "components": {c: t.to_dict() for c, t in summary.by_component.items()},
      "groups": [{"prefix": p, **t.to_dict()} for p, t in summary.groups],
    }
    if with_variables:
      d["variables"] = [v.to_dict() for v in self.variables]
    return d


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
  return (math.prod(shape) if shape else 1) * tensor_bundle.DTYPE_SIZES.get(dtype, 0)


def _optimizer_kind(name: str, shape: tuple[int, ...], dtype: str) -> str:
  """Kind of a value under the optimizer whose slot link is not in its key.

  Keras optimizers since tf-keras 2.11 (and Keras 3) keep slots in a flat
  ``_variables`` list: non-scalars are slots, the integer scalar is the
  iteration counter, other scalars are hyperparameters.
  """
  if name in _BOOKKEEPING_NAMES or name == "_iterations" or (not shape and dtype.startswith("int")):
    return BOOKKEEPING
  return OPTIMIZER_SLOT if shape else OPTIMIZER_STATE


def _classify_tf2(
  path: tuple[str, ...], key: str, shape: tuple[int, ...], dtype: str
) -> tuple[str, str]:
  """Returns (kind, slot_of) for a TF2 object-based key."""
  if _SLOT in key:
    primary = key.split(_SLOT, 1)[0]
    return OPTIMIZER_SLOT, "/".join(unescape(c) for c in primary.split("/"))
  for i, part in enumerate(path):
    if part in _OPTIMIZER_ROOTS:
      # Keras 3 optimizers also track the model's own trainable variables;
      # TF keys those under the optimizer when that path is the shortest.
      if i + 1 < len(path) and path[i + 1] == "_trainable_variables":
        return MODEL, ""
      return _optimizer_kind(path[-1], shape, dtype), ""
  if len(path) == 1 and path[0] in _BOOKKEEPING_NAMES:
    return BOOKKEEPING, ""
  return MODEL, ""


def _classify_tf1(name: str, all_names: frozenset[str]) -> tuple[str, str]:
  base, _, last = name.rpartition("/")
  if (
    base
    and (last in _TF1_SLOT_SUFFIXES or last.startswith("ExponentialMovingAverage"))
    and base in all_names
  ):
    return OPTIMIZER_SLOT, base
  if name in _BOOKKEEPING_NAMES:
    return BOOKKEEPING, ""
  if _TF1_OPTIMIZER_STATE.match(name):
    return OPTIMIZER_STATE, ""
  return MODEL, ""


def _is_object_based(keys: Iterable[str]) -> bool:
  return any(k == OBJECT_GRAPH_KEY or _ATTRIBUTES in k for k in keys)


def _read_tf_checkpoint(resolved: checkpoint_path.Resolved, object_graph: str) -> Inventory:
  prefix = resolved.path
  index_path = prefix + ".index"
  if not fileio.exists(index_path):
    raise errors.CheckpointNotFoundError(
      f"The checkpoint {prefix!r} has no index file.",
      received=f"{prefix} (no {fileio.basename(index_path)})",
      fix="Every TF checkpoint has '<prefix>.index'; copy it with the data shards.",
    )
  if fileio.isdir(index_path):
    raise errors.NotACheckpointError(
      f"{index_path!r} is a directory, not a checkpoint index.",
      received=index_path,
      fix="Point at the checkpoint prefix whose .index is a file.",
    )
  index = tensor_bundle.read_index(index_path)
  notes = list(resolved.notes)
  num_shards = index.header.num_shards
  missing = tuple(
    p
    for p in (tensor_bundle.shard_path(prefix, i, num_shards) for i in range(num_shards))
    if not fileio.exists(p)
  )
  shards = SHARDS_MISSING if missing else SHARDS_PRESENT
  keys = [e.key for e in index.entries]
  object_based = _is_object_based(keys)
  if resolved.saved_model:
    fmt = SAVED_MODEL
  else:
    fmt = TF2_OBJECT_BASED if object_based else TF1_NAME_BASED
  names = frozenset(keys)
  variables = []
  append = variables.append
  make = tuple.__new__  # a Variable without its Python-level __new__ (see tensor_bundle)
  classify = components.classify
  graph_entry = None
  # The hot loop of `od-guard inspect`: kept free of helper calls for the
  # common TF2 key, '<path>/.ATTRIBUTES/VARIABLE_VALUE' with nothing escaped.
  for e in index.entries:
    key = e.key
    if key == OBJECT_GRAPH_KEY:
      graph_entry = e
      continue
    if object_based:
      head, sep, attribute = key.rpartition(_ATTRIBUTES)
      if sep and "." not in head and _SLOT_MARK not in head and "optimizer" not in head:
        path = head
        root = head.split("/", 1)[0]
        if root in _OPTIMIZER_ROOTS:
          kind = _optimizer_kind(head.rsplit("/", 1)[-1], e.shape, e.dtype)
        elif root == head and root in _BOOKKEEPING_NAMES:
          kind = BOOKKEEPING
        else:
          kind = MODEL
        slot_of = ""
      else:
        path_parts, attribute = split_key(key)
        kind, slot_of = _classify_tf2(path_parts, key, e.shape, e.dtype)
        path = "/".join(path_parts)
    else:
      attribute = ""
      path = key
      kind, slot_of = _classify_tf1(key, names)
    append(
      make(
        Variable,
        (
          key,
          path,
          attribute,
          kind,
          classify(path) if kind == MODEL else "",
          e.shape,
          e.dtype,
          e.size or _nbytes(e.shape, e.dtype),
          slot_of,
        ),
      )
    )
  summary = None
  proto = None
  if missing:
    notes.append(
      "data shard missing: "
      + ", ".join(fileio.basename(m) for m in missing)
      + "; names, shapes and dtypes come from the index, but tensor values and "
      "the object graph cannot be checked"
    )
  elif graph_entry is not None and object_graph != OBJECT_GRAPH_NONE:
    raw = tensor_bundle.read_string_scalar(prefix, graph_entry, num_shards)
    summary = object_graph_lib.summarize(raw, prefix)
    if object_graph == OBJECT_GRAPH_FULL:
      proto = object_graph_lib.parse(raw, prefix)
  if fmt == TF1_NAME_BASED:
    notes.append(
      "TF1 name-based checkpoint (no object graph): TF2 code restores it only by variable name"
    )
  return Inventory(
    resolved=resolved,
    format=fmt,
    variables=tuple(variables),
    data_shards=shards,
    missing_shards=missing,
    object_graph=summary,
    object_graph_proto=proto,
    num_shards=num_shards,
    notes=tuple(notes),
  )


def read_inventory(path: str, *, object_graph: str = "summary") -> Inventory:
  """Reads a checkpoint's inventory from its metadata.

  Args:
    path: anything `checkpoint_path.resolve` accepts.
    object_graph: how much of a TF2 object graph to read when the data shard
      is there: OBJECT_GRAPH_NONE, OBJECT_GRAPH_SUMMARY (node count and root
      children; the default) or OBJECT_GRAPH_FULL (also the parsed message in
      `Inventory.object_graph_proto`, which matching needs).

  Returns:
    The inventory.

  Raises:
    OdGuardError: a subclass saying what is wrong with the path or the files.
  """
  resolved = checkpoint_path.resolve(path)
  if resolved.container == checkpoint_path.TF_CHECKPOINT:
    # Reading builds two records per saved value and no cycles; the cyclic
    # collector would run hundreds of times over the growing heap for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
      return _read_tf_checkpoint(resolved, object_graph)
    finally:
      if collecting:
        gc.enable()
  from od_guard.checkpoint import (
    keras_files as keras_weights,  # h5py is only needed for Keras files.
  )

  fmt, records = keras_weights.read(resolved.path, resolved.container)
  variables = tuple(
    Variable(
      key=key,
      path=key,
      attribute="",
      kind=kind,
      component=components.classify(key) if kind == MODEL else "",
      shape=shape,
      dtype=dtype,
      nbytes=_nbytes(shape, dtype),
    )
    for key, kind, shape, dtype in records
  )
  return Inventory(
    resolved=resolved,
    format=fmt,
    variables=variables,
    data_shards=SHARDS_NOT_APPLICABLE,
    notes=resolved.notes,
  )
