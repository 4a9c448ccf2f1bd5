"""`od-guard remap`: rewrite a checkpoint's names, keeping every value.

    od-guard remap SRC DST --rule 'model/CustomExtractor/->model/_feature_extractor/'
    od-guard remap SRC DST --from-report report.json    # the map a preflight proposed

A rule is ``OLD->NEW``: OLD is a regular expression matched at the start of a
checkpoint key, NEW its replacement (``\\1`` for groups). The first rule that
matches a key rewrites it. For TF2 object-based checkpoints the object graph is
rewritten consistently (the edge to a renamed scope gets the new name, every
attribute its new key), so the target model restores with `assert_consumed()`;
a rule must therefore rename scopes, not move them to another depth.

Tensor bytes are copied unchanged, with their stored CRCs, in bounded chunks
(no value is decoded, no TensorFlow is imported, memory stays within one
chunk); only the index and the object graph are written anew. Files are
written next to DST under temporary names and moved into place when complete
(data first, index last); SRC is never modified; DST is not overwritten unless
asked; the result is re-read and checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
import json
import os
import re
import sys

from od_guard import errors
from od_guard.checkpoint import inventory

SCHEMA = "od_guard.remap/1"
_PROGRESS_BYTES = 256 << 20  # a progress line per this many bytes copied


class RemapError(errors.OdGuardError):
  """The rename cannot be applied as asked."""


@dataclasses.dataclass(frozen=True)
class Rule:
  old: str
  new: str

  @classmethod
  def parse(cls, text: str) -> Rule:
    if "->" not in text:
      raise RemapError(
        "A rename rule needs the form OLD->NEW.",
        received=repr(text),
        fix="Write e.g. --rule 'model/CustomExtractor/->model/_feature_extractor/'.",
      )
    old, new = text.split("->", 1)
    old, new = old.strip(), new.strip()
    try:
      re.compile(old)
    except re.error as e:
      raise RemapError(
        f"The rule's OLD part is not a valid regular expression: {e}.",
        received=repr(text),
        fix="Escape special characters (Python `re`).",
      ) from e
    return cls(old, new)

  def apply(self, key: str) -> str | None:
    m = re.match(self.old, key)
    if not m:
      return None
    return m.expand(self.new) + key[m.end() :]


def rules_from_report(path: str) -> list[Rule]:
  """The rename map in a preflight / guard JSON report (findings' data.renames,
  or an exact data.key_map)."""
  try:
    with open(path, encoding="utf-8") as f:
      report = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise RemapError(
      f"Cannot read the report {path!r}: {e}.",
      received=path,
      fix="Pass the report.json that od-guard check --json or the guard wrote.",
    ) from e
  rules: list[Rule] = []
  for f in report.get("findings", []):
    data = f.get("data") or {}
    for r in data.get("renames", []):
      rule = Rule(re.escape(r["old"]), r["new"].replace("\\", "\\\\"))
      if rule not in rules:
        rules.append(rule)
    for old, new in (data.get("key_map") or {}).items():
      rules.append(Rule(re.escape(old) + "$", new.replace("\\", "\\\\")))
  if not rules:
    raise RemapError(
      f"The report {path!r} proposes no rename map.",
      received=path,
      fix="Remap needs a report with a renamed_scopes / restore_scope_missing / "
      "auto_named_layers finding, or --rule.",
    )
  return rules


@dataclasses.dataclass(frozen=True)
class RemapResult:
  source: str
  destination: str
  renamed: int
  unchanged: int
  object_graph_rewritten: bool
  verified: bool

  def to_dict(self) -> dict:
    return {"schema": SCHEMA, **dataclasses.asdict(self)}


def _new_keys(inv: inventory.Inventory, rules: Sequence[Rule]) -> dict[str, str]:
  mapping = {}
  for v in inv.variables:
    new = v.key
    for rule in rules:
      out = rule.apply(v.key)
      if out is not None:
        new = out
        break
    mapping[v.key] = new
  seen: dict[str, str] = {}
  for old, new in mapping.items():
    if new in seen and seen[new] != old:
      raise RemapError(
        "Two keys would get the same new name.",
        received=f"{seen[new]!r} and {old!r} -> {new!r}",
        fix="Make the rules more specific.",
      )
    seen[new] = old
  return mapping


def _rewrite_graph(proto, mapping: dict[str, str]):
  """Renames object-graph edges so that each value's new key is its path."""
  by_key = {}
  for node_id, node in enumerate(proto.nodes):
    for a in node.attributes:
      by_key[a.checkpoint_key] = node_id
  # The first (breadth-first) path of every node: the one its keys are made of.
  paths = {0: ()}
  parents: dict[int, tuple[int, int]] = {}
  order = [0]
  for node_id in order:
    for i, child in enumerate(proto.nodes[node_id].children):
      if child.node_id not in paths:
        paths[child.node_id] = paths[node_id] + (child.local_name,)
        parents[child.node_id] = (node_id, i)
        order.append(child.node_id)
  renames: dict[tuple[int, int], str] = {}
  for old, new in mapping.items():
    if old == new or old not in by_key:
      continue
    old_path, _ = inventory.split_key(old)
    new_path, _ = inventory.split_key(new)
    node = by_key[old]
    if paths.get(node) != tuple(old_path) or len(old_path) != len(new_path):
      raise RemapError(
        "A rule moves a value to another depth of the object graph; only renames of "
        "scopes can be applied to an object-based checkpoint.",
        received=f"{old!r} -> {new!r}",
        fix="Rename whole scopes at the same depth (e.g. 'model/A/' -> 'model/B/').",
      )
    # Walk up from the value, renaming each edge whose name changes.
    for depth in range(len(old_path) - 1, -1, -1):
      if old_path[depth] != new_path[depth]:
        parent, index = parents[node]
        previous = renames.setdefault((parent, index), new_path[depth])
        if previous != new_path[depth]:
          raise RemapError(
            "Two rules rename the same scope differently.",
            received=f"{'/'.join(old_path[: depth + 1])!r}: {previous!r} vs {new_path[depth]!r}",
            fix="Make the rules agree.",
          )
      node = parents[node][0] if node in parents else node
  for (parent, index), name in renames.items():
    proto.nodes[parent].children[index].local_name = name
  for node in proto.nodes:
    for a in node.attributes:
      a.checkpoint_key = mapping.get(a.checkpoint_key, a.checkpoint_key)
  return proto


def remap(
  source: str,
  destination: str,
  rules: Sequence[Rule],
  *,
  overwrite: bool = False,
  progress: Callable[[int, int], None] | None = None,
  progress_every: int = _PROGRESS_BYTES,
) -> RemapResult:
  """Writes DESTINATION: SOURCE with its keys rewritten by `rules`.

  Raises:
    RemapError: the rules cannot be applied, or DST exists and overwrite is off.
    OdGuardError: SOURCE cannot be read (missing data shard included).
  """
  inv = inventory.read_inventory(source, object_graph=inventory.OBJECT_GRAPH_FULL)
  if inv.data_shards != inventory.SHARDS_PRESENT:
    raise RemapError(
      "Remap copies tensor values, and the source's data shard is missing.",
      received=", ".join(inv.missing_shards) or inv.prefix,
      fix="Copy the .data-* files next to the .index first.",
    )
  if inv.format not in (
    inventory.TF2_OBJECT_BASED,
    inventory.TF1_NAME_BASED,
    inventory.SAVED_MODEL,
  ):
    raise RemapError(
      "Remap rewrites TF checkpoints; this is a Keras weights file.",
      received=f"{inv.prefix} ({inv.format})",
      fix="Load it into the model with load_weights and save a TF checkpoint.",
    )
  if os.path.abspath(destination) == os.path.abspath(inv.prefix):
    raise RemapError(
      "The destination is the source; remap never modifies its input.",
      received=destination,
      fix="Pass another destination prefix.",
    )
  if os.path.exists(destination + ".index") and not overwrite:
    raise RemapError(
      "The destination checkpoint exists.",
      received=destination + ".index",
      fix="Pass --overwrite to replace it, or choose another prefix.",
    )
  mapping = _new_keys(inv, rules)
  replace = {}
  if inv.object_graph_proto is not None:
    proto = _rewrite_graph(inv.object_graph_proto, mapping)
    replace[inventory.OBJECT_GRAPH_KEY] = proto.SerializeToString()
  from od_guard.checkpoint import tensor_bundle

  index = tensor_bundle.read_index(inv.prefix + ".index")
  os.makedirs(os.path.dirname(os.path.abspath(destination)) or ".", exist_ok=True)
  tensor_bundle.copy_bundle(
    inv.prefix,
    index,
    destination,
    mapping,
    replace,
    progress=progress,
    progress_every=progress_every,
  )
  verified = _verify(inv, destination, mapping)
  return RemapResult(
    source=inv.prefix,
    destination=destination,
    renamed=sum(1 for o, n in mapping.items() if o != n),
    unchanged=sum(1 for o, n in mapping.items() if o == n),
    object_graph_rewritten=bool(replace),
    verified=verified,
  )


def _verify(source: inventory.Inventory, destination: str, mapping: dict[str, str]) -> bool:
  out = inventory.read_inventory(destination, object_graph=inventory.OBJECT_GRAPH_FULL)
  want = {mapping[v.key]: (v.shape, v.dtype) for v in source.variables}
  have = {v.key: (v.shape, v.dtype) for v in out.variables}
  if want != have:
    raise RemapError(
      "The written checkpoint does not hold what was asked.",
      received=f"{len(set(want) ^ set(have))} keys differ",
      fix="Report this; the source is untouched.",
    )
  if out.object_graph_proto is not None:
    keys = {a.checkpoint_key for n in out.object_graph_proto.nodes for a in n.attributes}
    if keys != set(have):
      raise RemapError(
        "The rewritten object graph and the keys disagree.",
        received=f"{len(keys ^ set(have))} keys",
        fix="Report this.",
      )
  return True


def print_progress(done: int, total: int) -> None:
  print(
    f"remap: {done:,}/{total:,} tensors ({done / max(total, 1):.0%})", file=sys.stderr, flush=True
  )


@dataclasses.dataclass(frozen=True)
class ConversionResult:
  source: str
  destination: str
  converted: int
  unused: tuple[str, ...]

  def to_dict(self) -> dict:
    return {"schema": "od_guard.convert/1", **dataclasses.asdict(self), "unused": list(self.unused)}


def tf1_to_object_based(
  source: str, destination: str, roots: dict, *, rules: Sequence[Rule] = (), overwrite: bool = False
) -> ConversionResult:
  """Converts a TF1 name-based checkpoint into a TF2 object-based one for a
  target model.

  Each TF1 name, rewritten by `rules` (first match wins), must equal the TF
  variable name (without ':0') of one variable of the target, with the same
  shape; every variable of the target must get a value. The values are
  assigned to the target's variables and the target is saved with
  `tf.train.Checkpoint(**roots).write(destination)`, so that it restores with
  `assert_consumed()`.

  Args:
    source: the TF1 checkpoint.
    destination: the new checkpoint prefix.
    roots: the target, as `tf.train.Checkpoint` keyword arguments
      (e.g. {'model': model}); its variables must exist (build it first).
    rules: rename rules from TF1 names to the target's variable names.
    overwrite: replace an existing destination.

  Raises:
    RemapError: not a TF1 checkpoint, a target variable without a value, a
      shape that does not fit, or the destination exists.
  """
  import tensorflow as tf

  from od_guard.restore import live_graph

  inv = inventory.read_inventory(source, object_graph=inventory.OBJECT_GRAPH_NONE)
  if inv.format != inventory.TF1_NAME_BASED:
    raise RemapError(
      "Only TF1 name-based checkpoints are converted.",
      received=f"{inv.prefix} ({inv.format})",
      fix="An object-based checkpoint is renamed with remap rules instead.",
    )
  if os.path.exists(destination + ".index") and not overwrite:
    raise RemapError(
      "The destination checkpoint exists.",
      received=destination + ".index",
      fix="Pass overwrite=True, or choose another prefix.",
    )
  renamed: dict[str, str] = {}
  for v in inv.of_kind(inventory.MODEL):
    new = v.key
    for rule in rules:
      out = rule.apply(v.key)
      if out is not None:
        new = out
        break
    renamed[new] = v.key
  graph = live_graph.capture(roots)
  objects = {id(o): o for o, _ in live_graph._bfs(roots)}  # pylint: disable=protected-access
  entries = inv.by_key()
  reader = tf.train.load_checkpoint(inv.prefix)
  missing, bad_shapes, assignments = [], [], []
  for uid, lv in graph.variables.items():
    old = renamed.get(lv.name)
    if old is None:
      missing.append(f"{lv.path} (variable name {lv.name!r})")
    elif tuple(entries[old].shape) != lv.shape:
      bad_shapes.append(
        f"{old}: {inventory.format_shape(entries[old].shape)} vs "
        f"{lv.path}: {inventory.format_shape(lv.shape)}"
      )
    else:
      assignments.append((objects[uid], old))
  if missing or bad_shapes:
    raise RemapError(
      "The TF1 checkpoint does not fit the target model.",
      received=(
        f"{len(missing)} target variables without a value"
        + (f" (e.g. {missing[0]})" if missing else "")
        + (f"; {len(bad_shapes)} shape mismatches (e.g. {bad_shapes[0]})" if bad_shapes else "")
      ),
      fix=(
        "Add rules mapping the TF1 names to the target's variable names "
        "(OLD->NEW, first match wins), or name the target's variables like the TF1 ones."
      ),
    )
  for variable, old in assignments:
    variable.assign(reader.get_tensor(old))
  os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
  ckpt = tf.train.Checkpoint(**roots)
  _ = ckpt.save_counter  # created, as save() would
  ckpt.write(destination)
  used = {old for _, old in assignments}
  return ConversionResult(
    source=inv.prefix,
    destination=destination,
    converted=len(used),
    unused=tuple(sorted(k for k in renamed.values() if k not in used)),
  )
