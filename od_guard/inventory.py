"""A checkpoint's inventory: every saved value's name, shape, dtype and size.

`read_inventory` is the single reader every od_guard feature uses. It reads
metadata only (the tensor-bundle index, the object graph, HDF5 dataset headers)
and never tensor values, so its memory grows with the number of variables, not
with the checkpoint's size. Reading a TF checkpoint imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Iterable, Sequence

from od_guard import checkpoint_path
from od_guard import components
from od_guard import errors
from od_guard import fileio
from od_guard import tensor_bundle

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
_ATTRIBUTES = "/.ATTRIBUTES/"
_SLOT = "/.OPTIMIZER_SLOT/"
_ESCAPE = re.compile(r"\.(.)")
_BOOKKEEPING_NAMES = frozenset({
    "save_counter", "step", "global_step", "iterations", "iter", "epoch",
    "_CHECKPOINTABLE_OBJECT_GRAPH", "_SAVEABLE_OBJECT_GRAPH",
})
_TF1_SLOT_SUFFIXES = ("Momentum", "RMSProp", "RMSProp_1", "Adam", "Adam_1",
                      "Adagrad", "Ftrl", "Ftrl_1", "ExponentialMovingAverage",
                      "AdamW", "AdamW_1", "Adadelta", "Adadelta_1")
_TF1_OPTIMIZER_STATE = re.compile(r"^(beta1_power|beta2_power|learning_rate)(_\d+)?$")


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
    return tuple(unescape(c) for c in key.split("/")), ""
  return tuple(unescape(c) for c in head.split("/")), attribute


@dataclasses.dataclass(frozen=True)
class Variable:
  """One saved value.

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
    d = dataclasses.asdict(self)
    d["shape"] = list(self.shape)
    d["num_params"] = self.num_params
    return d


@dataclasses.dataclass(frozen=True)
class Totals:
  tensors: int = 0
  params: int = 0
  bytes: int = 0

  def add(self, v: Variable) -> "Totals":
    return Totals(self.tensors + 1, self.params + v.num_params, self.bytes + v.nbytes)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ObjectGraphSummary:
  """What the object graph says, when it could be read."""

  num_nodes: int
  root_children: tuple[str, ...]

  def to_dict(self) -> dict:
    return {"num_nodes": self.num_nodes, "root_children": list(self.root_children)}


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
    object_graph_proto: the parsed `TrackableObjectGraph`, or None.
    num_shards: data shards the index names (0 for Keras files).
    notes: facts worth telling the user (how the path resolved, what could
      not be read).
  """

  resolved: checkpoint_path.Resolved
  format: str
  variables: tuple[Variable, ...]
  data_shards: str
  missing_shards: tuple[str, ...] = ()
  object_graph: ObjectGraphSummary | None = None
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
    t = Totals()
    for v in self.variables if variables is None else variables:
      t = t.add(v)
    return t

  def totals_by_kind(self) -> dict[str, Totals]:
    out = {k: Totals() for k in KINDS}
    for v in self.variables:
      out[v.kind] = out[v.kind].add(v)
    return out

  def totals_by_component(self) -> dict[str, Totals]:
    """Totals of model values per detector component (empty ones left out)."""
    out: dict[str, Totals] = {}
    for v in self.variables:
      if v.kind == MODEL:
        out[v.component] = out.get(v.component, Totals()).add(v)
    return {c: out[c] for c in components.ALL if c in out}

  def groups(self, depth: int, kinds: Sequence[str] = KINDS) -> list[tuple[str, Totals]]:
    """Totals per path prefix of `depth` components, in path order."""
    out: dict[str, Totals] = {}
    for v in self.variables:
      if v.kind in kinds:
        prefix = "/".join(v.path.split("/")[:depth])
        out[prefix] = out.get(prefix, Totals()).add(v)
    return sorted(out.items())

  def to_dict(self, *, depth: int = 3, with_variables: bool = False) -> dict:
    """The JSON form (schema ``od_guard.inventory/1``, see docs/json_schema.md)."""
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
        "totals": self.totals().to_dict(),
        "totals_by_kind": {k: t.to_dict() for k, t in self.totals_by_kind().items()},
        "components": {c: t.to_dict() for c, t in self.totals_by_component().items()},
        "groups": [{"prefix": p, **t.to_dict()} for p, t in self.groups(depth)],
    }
    if with_variables:
      d["variables"] = [v.to_dict() for v in self.variables]
    return d


def _nbytes(shape: tuple[int, ...], dtype: str, stored: int | None = None) -> int:
  if stored is not None and (stored or dtype not in tensor_bundle.DTYPE_SIZES):
    return stored
  return (math.prod(shape) if shape else 1) * tensor_bundle.DTYPE_SIZES.get(dtype, 0)


def _optimizer_kind(name: str, shape: tuple[int, ...], dtype: str) -> str:
  """Kind of a value under the optimizer whose slot link is not in its key.

  Keras optimizers since tf-keras 2.11 (and Keras 3) keep slots in a flat
  ``_variables`` list: non-scalars are slots, the integer scalar is the
  iteration counter, other scalars are hyperparameters.
  """
  if name in _BOOKKEEPING_NAMES or name == "_iterations" or (
      not shape and dtype.startswith("int")):
    return BOOKKEEPING
  return OPTIMIZER_SLOT if shape else OPTIMIZER_STATE


def _classify_tf2(path: tuple[str, ...], key: str, shape: tuple[int, ...],
                  dtype: str) -> tuple[str, str]:
  """Returns (kind, slot_of) for a TF2 object-based key."""
  if _SLOT in key:
    primary = key.split(_SLOT, 1)[0]
    return OPTIMIZER_SLOT, "/".join(unescape(c) for c in primary.split("/"))
  if path and path[0] in ("optimizer", "_optimizer", "optimizer_state"):
    return _optimizer_kind(path[-1], shape, dtype), ""
  if len(path) == 1 and path[0] in _BOOKKEEPING_NAMES:
    return BOOKKEEPING, ""
  return MODEL, ""


def _classify_tf1(name: str, all_names: frozenset[str]) -> tuple[str, str]:
  base, _, last = name.rpartition("/")
  if base and (last in _TF1_SLOT_SUFFIXES or last.startswith("ExponentialMovingAverage")) \
      and base in all_names:
    return OPTIMIZER_SLOT, base
  if name in _BOOKKEEPING_NAMES:
    return BOOKKEEPING, ""
  if _TF1_OPTIMIZER_STATE.match(name):
    return OPTIMIZER_STATE, ""
  return MODEL, ""


def _is_object_based(keys: Iterable[str]) -> bool:
  return any(k == OBJECT_GRAPH_KEY or _ATTRIBUTES in k for k in keys)


def _read_object_graph(prefix: str, entry: tensor_bundle.BundleEntry,
                       num_shards: int):
  from tensorboard.compat.proto import trackable_object_graph_pb2  # Protobuf only, no TF.
  from google.protobuf import message
  raw = tensor_bundle.read_string_scalar(prefix, entry, num_shards)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  try:
    graph.ParseFromString(raw)
  except message.DecodeError as e:
    raise errors.CorruptCheckpointError(
        f"The object graph in {prefix!r} does not decode.",
        received=f"{len(raw):,} bytes at offset {entry.offset}",
        fix="Copy the checkpoint's data shard again from its source.") from e
  return graph


def _read_tf_checkpoint(resolved: checkpoint_path.Resolved,
                        read_object_graph: bool) -> Inventory:
  prefix = resolved.path
  index_path = prefix + ".index"
  if not fileio.exists(index_path):
    raise errors.CheckpointNotFoundError(
        f"The checkpoint {prefix!r} has no index file.",
        received=f"{prefix} (no {fileio.basename(index_path)})",
        fix="Every TF checkpoint has '<prefix>.index'; copy it with the data shards.")
  if fileio.isdir(index_path):
    raise errors.NotACheckpointError(
        f"{index_path!r} is a directory, not a checkpoint index.", received=index_path,
        fix="Point at the checkpoint prefix whose .index is a file.")
  index = tensor_bundle.read_index(index_path)
  notes = list(resolved.notes)
  num_shards = index.header.num_shards
  missing = tuple(
      p for p in (tensor_bundle.shard_path(prefix, i, num_shards) for i in range(num_shards))
      if not fileio.exists(p))
  shards = SHARDS_MISSING if missing else SHARDS_PRESENT
  keys = [e.key for e in index.entries]
  object_based = _is_object_based(keys)
  if resolved.saved_model:
    fmt = SAVED_MODEL
  else:
    fmt = TF2_OBJECT_BASED if object_based else TF1_NAME_BASED
  names = frozenset(keys)
  variables = []
  graph_entry = None
  for e in index.entries:
    if e.key == OBJECT_GRAPH_KEY:
      graph_entry = e
      continue
    if object_based:
      path_parts, attribute = split_key(e.key)
      kind, slot_of = _classify_tf2(path_parts, e.key, e.shape, e.dtype)
      path = "/".join(path_parts)
    else:
      attribute = ""
      path = e.key
      kind, slot_of = _classify_tf1(e.key, names)
    component = components.classify(path) if kind == MODEL else ""
    variables.append(Variable(
        key=e.key, path=path, attribute=attribute, kind=kind, component=component,
        shape=e.shape, dtype=e.dtype, nbytes=_nbytes(e.shape, e.dtype, e.size),
        slot_of=slot_of))
  summary = None
  proto = None
  if missing:
    notes.append(
        "data shard missing: " + ", ".join(fileio.basename(m) for m in missing)
        + "; names, shapes and dtypes come from the index, but tensor values and "
        "the object graph cannot be checked")
  elif graph_entry is not None and read_object_graph:
    proto = _read_object_graph(prefix, graph_entry, num_shards)
    root = proto.nodes[0] if proto.nodes else None
    summary = ObjectGraphSummary(
        num_nodes=len(proto.nodes),
        root_children=tuple(c.local_name for c in root.children) if root else ())
  if fmt == TF1_NAME_BASED:
    notes.append("TF1 name-based checkpoint (no object graph): TF2 code restores it "
                 "only by variable name")
  return Inventory(resolved=resolved, format=fmt, variables=tuple(variables),
                   data_shards=shards, missing_shards=missing, object_graph=summary,
                   object_graph_proto=proto, num_shards=num_shards, notes=tuple(notes))


def read_inventory(path: str, *, read_object_graph: bool = True) -> Inventory:
  """Reads a checkpoint's inventory from its metadata.

  Args:
    path: anything `checkpoint_path.resolve` accepts.
    read_object_graph: parse the TF2 object graph when the data shard is there.

  Returns:
    The inventory.

  Raises:
    OdGuardError: a subclass saying what is wrong with the path or the files.
  """
  resolved = checkpoint_path.resolve(path)
  if resolved.container == checkpoint_path.TF_CHECKPOINT:
    return _read_tf_checkpoint(resolved, read_object_graph)
  from od_guard import keras_weights  # h5py is only needed for Keras files.
  fmt, records = keras_weights.read(resolved.path, resolved.container)
  variables = tuple(
      Variable(key=key, path=key, attribute="", kind=kind,
               component=components.classify(key) if kind == MODEL else "",
               shape=shape, dtype=dtype, nbytes=_nbytes(shape, dtype))
      for key, kind, shape, dtype in records)
  return Inventory(resolved=resolved, format=fmt, variables=variables,
                   data_shards=SHARDS_NOT_APPLICABLE, notes=resolved.notes)
