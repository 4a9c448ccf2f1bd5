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
from typing import NamedTuple

from od_guard import _records
from od_guard import errors
from od_guard.checkpoint import components
from od_guard.checkpoint import fileio
from od_guard.checkpoint import keys as checkpoint_keys
from od_guard.checkpoint import kinds
from od_guard.checkpoint import object_graph as object_graph_lib
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import tensor_bundle

SCHEMA = "od_guard.inventory/1"

# Formats and kinds of saved value, defined in `kinds` and named through the
# inventory by the layers above.
TF2_OBJECT_BASED = kinds.TF2_OBJECT_BASED
TF1_NAME_BASED = kinds.TF1_NAME_BASED
SAVED_MODEL = kinds.SAVED_MODEL
KERAS3_WEIGHTS = kinds.KERAS3_WEIGHTS
KERAS2_HDF5 = kinds.KERAS2_HDF5
MODEL = kinds.MODEL
OPTIMIZER_SLOT = kinds.OPTIMIZER_SLOT
OPTIMIZER_STATE = kinds.OPTIMIZER_STATE
BOOKKEEPING = kinds.BOOKKEEPING
KINDS = kinds.KINDS

# Data-shard states.
SHARDS_PRESENT = "present"
SHARDS_MISSING = "missing"
SHARDS_NOT_APPLICABLE = "n/a"

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

# How much of the object graph to read.
OBJECT_GRAPH_NONE = "none"
OBJECT_GRAPH_SUMMARY = "summary"
OBJECT_GRAPH_FULL = "full"


def format_shape(shape: tuple[int, ...]) -> str:
  """A shape as Python prints a tuple: '(3, 3)', '(4,)', '()'."""
  return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


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
class Totals(_records.Record):
  tensors: int = 0
  params: int = 0
  bytes: int = 0


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
    weight_order: for KERAS2_HDF5 files, the keys of the saved values in the
      order tf-keras loads them by position (layers in `layer_names` order,
      weights in `weight_names` order); () for every other format.
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
  weight_order: tuple[str, ...] = dataclasses.field(default=(), repr=False)

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


def _read_index(prefix: str) -> tensor_bundle.BundleIndex:
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
  return tensor_bundle.read_index(index_path)


def _missing_shards(prefix: str, num_shards: int) -> tuple[str, ...]:
  shards = (tensor_bundle.shard_path(prefix, i, num_shards) for i in range(num_shards))
  return tuple(p for p in shards if not fileio.exists(p))


def _is_object_based(keys: Iterable[str]) -> bool:
  return any(k == OBJECT_GRAPH_KEY or checkpoint_keys.ATTRIBUTES_INFIX in k for k in keys)


def _tf2_variables(
  entries: Iterable[tensor_bundle.BundleEntry],
) -> tuple[list[Variable], tensor_bundle.BundleEntry | None]:
  """The saved values of a TF2 object-based checkpoint, and the entry of its
  object graph (None where there is none)."""
  variables = []
  append = variables.append
  make = tuple.__new__  # a Variable without its Python-level __new__ (see tensor_bundle)
  classify = components.classify
  attributes_infix = checkpoint_keys.ATTRIBUTES_INFIX
  bookkeeping_names = kinds.BOOKKEEPING_NAMES
  graph_entry = None
  # The hot loop of `od-guard inspect`: kept free of helper calls for the
  # common key, '<path>/.ATTRIBUTES/VARIABLE_VALUE' with nothing escaped (so
  # no slot) and no optimizer on the path (every optimizer root's name holds
  # "optimizer"); `kinds.tf2_kind` classifies the others.
  for e in entries:
    key = e.key
    if key == OBJECT_GRAPH_KEY:
      graph_entry = e
      continue
    head, sep, attribute = key.rpartition(attributes_infix)
    if sep and "." not in head and "optimizer" not in head:
      path = head
      kind = BOOKKEEPING if head in bookkeeping_names else MODEL
      slot_of = ""
    else:
      path_parts, attribute = checkpoint_keys.split_key(key)
      kind, slot_of = kinds.tf2_kind(path_parts, key, e.shape, e.dtype)
      path = "/".join(path_parts)
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
  return variables, graph_entry


def _tf1_variables(entries: tuple[tensor_bundle.BundleEntry, ...]) -> list[Variable]:
  """The saved values of a TF1 name-based checkpoint."""
  names = frozenset(e.key for e in entries)
  variables = []
  for e in entries:
    kind, slot_of = kinds.tf1_kind(e.key, names)
    variables.append(
      Variable(
        key=e.key,
        path=e.key,
        attribute="",
        kind=kind,
        component=components.classify(e.key) if kind == MODEL else "",
        shape=e.shape,
        dtype=e.dtype,
        nbytes=e.size or _nbytes(e.shape, e.dtype),
        slot_of=slot_of,
      )
    )
  return variables


def _read_object_graph(
  prefix: str, entry: tensor_bundle.BundleEntry, num_shards: int, how: str
) -> tuple[object_graph_lib.ObjectGraphSummary | None, object | None]:
  """(summary, parsed message) of the object graph, as much as `how` asks."""
  if how == OBJECT_GRAPH_NONE:
    return None, None
  raw = tensor_bundle.read_string_scalar(prefix, entry, num_shards)
  summary = object_graph_lib.summarize(raw, prefix)
  return summary, object_graph_lib.parse(raw, prefix) if how == OBJECT_GRAPH_FULL else None


def _read_tf_checkpoint(resolved: checkpoint_path.Resolved, object_graph: str) -> Inventory:
  prefix = resolved.path
  index = _read_index(prefix)
  num_shards = index.header.num_shards
  missing = _missing_shards(prefix, num_shards)
  object_based = _is_object_based(e.key for e in index.entries)
  if object_based:
    variables, graph_entry = _tf2_variables(index.entries)
  else:
    variables, graph_entry = _tf1_variables(index.entries), None
  if resolved.saved_model:
    fmt = SAVED_MODEL
  else:
    fmt = TF2_OBJECT_BASED if object_based else TF1_NAME_BASED
  notes = list(resolved.notes)
  summary = proto = None
  if missing:
    notes.append(
      "data shard missing: "
      + ", ".join(fileio.basename(m) for m in missing)
      + "; names, shapes and dtypes come from the index, but tensor values and "
      "the object graph cannot be checked"
    )
  elif graph_entry is not None:
    summary, proto = _read_object_graph(prefix, graph_entry, num_shards, object_graph)
  sliced = [e.key for e in index.entries if e.sliced]
  if sliced:
    notes.append(
      f"{len(sliced)} partitioned (sliced) variable(s), e.g. {sliced[0]!r}: not damage; the"
      " index lists each whole, and TensorFlow restores it from its slices, but od_guard"
      " reads no slice (verify does not check them; remap refuses them)"
    )
  if fmt == TF1_NAME_BASED:
    notes.append(
      "TF1 name-based checkpoint (no object graph): TF2 code restores it only by variable name"
    )
  return Inventory(
    resolved=resolved,
    format=fmt,
    variables=tuple(variables),
    data_shards=SHARDS_MISSING if missing else SHARDS_PRESENT,
    missing_shards=missing,
    object_graph=summary,
    object_graph_proto=proto,
    num_shards=num_shards,
    notes=tuple(notes),
  )


def _read_keras_file(resolved: checkpoint_path.Resolved) -> Inventory:
  # Imported on use: only Keras files need it (and its zipfile and h5py).
  from od_guard.checkpoint import keras_files

  contents = keras_files.read(resolved.path, resolved.container)
  variables = tuple(
    Variable(
      key=r.key,
      path=r.key,
      attribute="",
      kind=r.kind,
      component=components.classify(r.key) if r.kind == MODEL else "",
      shape=r.shape,
      dtype=r.dtype,
      nbytes=_nbytes(r.shape, r.dtype),
    )
    for r in contents.records
  )
  return Inventory(
    resolved=resolved,
    format=contents.format,
    variables=variables,
    data_shards=SHARDS_NOT_APPLICABLE,
    notes=resolved.notes,
    weight_order=contents.weight_order,
  )


def read_inventory(path: str, *, object_graph: str = OBJECT_GRAPH_SUMMARY) -> Inventory:
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
  if resolved.container != checkpoint_path.TF_CHECKPOINT:
    return _read_keras_file(resolved)
  # Reading builds two records per saved value and no cycles; the cyclic
  # collector would run hundreds of times over the growing heap for nothing.
  collecting = gc.isenabled()
  gc.disable()
  try:
    return _read_tf_checkpoint(resolved, object_graph)
  finally:
    if collecting:
      gc.enable()
