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
asked; the result is re-read and compared with SRC, entry by entry.

Converting a TF1 name-based checkpoint for a target model (which needs
TensorFlow) is `od_guard.naming.tf1_conversion`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
import dataclasses
import json
import os
import re
import sys

from od_guard import errors
from od_guard.checkpoint import inventory
from od_guard.checkpoint import keys as checkpoint_keys
from od_guard.checkpoint import tensor_bundle
from od_guard.naming import rules as naming_rules

SCHEMA = "od_guard.remap/1"
_PROGRESS_BYTES = 256 << 20  # a progress line per this many bytes copied


class RemapError(errors.OdGuardError):
  """The rename cannot be applied as asked."""


class RemapVerificationError(RemapError):
  """The written destination, read back, does not hold what the source and the
  rules promise."""


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
    naming_rules.compile_pattern(
      old,
      "The rule's OLD part",
      error=RemapError,
      received=repr(text),
      fix="Escape special characters (Python `re`).",
    )
    return cls(old, new)

  def apply(self, key: str) -> str | None:
    m = re.match(self.old, key)
    if not m:
      return None
    return m.expand(self.new) + key[m.end() :]


def rename(key: str, rules: Sequence[Rule]) -> str:
  """`key` rewritten by the first rule that matches it; unchanged if none does."""
  for rule in rules:
    out = rule.apply(key)
    if out is not None:
      return out
  return key


def rename_keys(keys: Iterable[str], rules: Sequence[Rule]) -> dict[str, str]:
  """Each key's new name (see `rename`), checked for collisions.

  Args:
    keys: distinct checkpoint keys (or TF1 names).
    rules: rename rules, in order of precedence.

  Returns:
    {old key: new key} for every key.

  Raises:
    RemapError: two keys would get the same new name.
  """
  mapping: dict[str, str] = {}
  seen: dict[str, str] = {}
  for key in keys:
    new = rename(key, rules)
    if new in seen:
      raise RemapError(
        "Two keys would get the same new name.",
        received=f"{seen[new]!r} and {key!r} -> {new!r}",
        fix="Make the rules more specific.",
      )
    seen[new] = key
    mapping[key] = new
  return mapping


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
  """What `remap` wrote.

  Attributes:
    source: the source prefix.
    destination: the written prefix.
    renamed: keys whose name changed.
    unchanged: keys no rule matched.
    object_graph_rewritten: whether the object graph was written anew.
    verified: the destination was read back and matched the source entry by
      entry (always True in a result: a failed verification raises).
  """

  source: str
  destination: str
  renamed: int
  unchanged: int
  object_graph_rewritten: bool
  verified: bool

  def to_dict(self) -> dict:
    return {"schema": SCHEMA, **dataclasses.asdict(self)}


def _first_paths(proto) -> tuple[dict[int, tuple[str, ...]], dict[int, tuple[int, int]]]:
  """The first (breadth-first) path of every node of an object graph, the one
  its keys are made of, and the edge (parent node, child index) it is reached by."""
  paths: dict[int, tuple[str, ...]] = {0: ()}
  parents: dict[int, tuple[int, int]] = {}
  order = [0]
  for node_id in order:
    for i, child in enumerate(proto.nodes[node_id].children):
      if child.node_id not in paths:
        paths[child.node_id] = paths[node_id] + (child.local_name,)
        parents[child.node_id] = (node_id, i)
        order.append(child.node_id)
  return paths, parents


def _edge_renames(proto, mapping: Mapping[str, str]) -> dict[tuple[int, int], str]:
  """The new local name of each object-graph edge that `mapping` renames, by
  (parent node, child index)."""
  by_key = {a.checkpoint_key: i for i, node in enumerate(proto.nodes) for a in node.attributes}
  paths, parents = _first_paths(proto)
  renames: dict[tuple[int, int], str] = {}
  for old, new in mapping.items():
    if old == new or old not in by_key:
      continue
    old_path, _ = checkpoint_keys.split_key(old)
    new_path, _ = checkpoint_keys.split_key(new)
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
        edge = parents[node]
        previous = renames.setdefault(edge, new_path[depth])
        if previous != new_path[depth]:
          raise RemapError(
            "Two rules rename the same scope differently.",
            received=f"{'/'.join(old_path[: depth + 1])!r}: {previous!r} vs {new_path[depth]!r}",
            fix="Make the rules agree.",
          )
      node = parents[node][0] if node in parents else node
  return renames


def rewrite_object_graph(proto, mapping: Mapping[str, str]):
  """The object graph of the renamed checkpoint: each value's new key is its
  path (renamed edges, renamed attribute keys).

  Args:
    proto: a `TrackableObjectGraph` (`Inventory.object_graph_proto`); left
      unchanged.
    mapping: {old key: new key} (see `rename_keys`).

  Returns:
    A rewritten copy of `proto`.

  Raises:
    RemapError: a rename moves a value to another depth, or two renames give
      one scope different names.
  """
  renames = _edge_renames(proto, mapping)
  out = type(proto)()
  out.CopyFrom(proto)
  for (parent, index), name in renames.items():
    out.nodes[parent].children[index].local_name = name
  for node in out.nodes:
    for a in node.attributes:
      a.checkpoint_key = mapping.get(a.checkpoint_key, a.checkpoint_key)
  return out


def _check_source(inv: inventory.Inventory, destination: str, overwrite: bool) -> None:
  """Refuses what remap cannot or must not do before anything is written."""
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

  Args:
    source: a TF checkpoint (object-based, TF1 name-based, or a SavedModel's
      variables).
    destination: the new checkpoint prefix.
    rules: rename rules (the first that matches a key rewrites it).
    overwrite: replace an existing destination.
    progress: called with (tensors copied, tensors in all) as the copy goes.
    progress_every: bytes copied between two progress calls.

  Returns:
    What was written.

  Raises:
    RemapError: the rules cannot be applied, or DST exists and overwrite is off.
    RemapVerificationError: the destination, read back, differs from the source.
    OdGuardError: SOURCE cannot be read (missing data shard included).
  """
  inv = inventory.read_inventory(source, object_graph=inventory.OBJECT_GRAPH_FULL)
  _check_source(inv, destination, overwrite)
  mapping = rename_keys((v.key for v in inv.variables), rules)
  replace: dict[str, bytes] = {}
  if inv.object_graph_proto is not None:
    proto = rewrite_object_graph(inv.object_graph_proto, mapping)
    replace[inventory.OBJECT_GRAPH_KEY] = proto.SerializeToString()
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
  _verify(index, destination, mapping, replace)
  return RemapResult(
    source=inv.prefix,
    destination=destination,
    renamed=sum(1 for o, n in mapping.items() if o != n),
    unchanged=sum(1 for o, n in mapping.items() if o == n),
    object_graph_rewritten=bool(replace),
    verified=True,
  )


def _entry_differences(
  source: tensor_bundle.BundleIndex,
  written: tensor_bundle.BundleIndex,
  mapping: Mapping[str, str],
  replace: Mapping[str, bytes],
) -> list[str]:
  """How the written index differs from the source's under `mapping`: keys
  missing or unexpected, and copied tensors whose dtype, shape, size or CRC
  changed (re-encoded `replace` keys keep their dtype and shape only)."""
  fields = ("dtype", "shape", "size", "crc32c")
  have = {e.key: e for e in written.entries}
  problems = []
  for e in source.entries:
    key = mapping.get(e.key, e.key)
    got = have.pop(key, None)
    if got is None:
      problems.append(f"{key!r} is missing")
      continue
    for field in fields[:2] if e.key in replace else fields:
      if getattr(e, field) != getattr(got, field):
        problems.append(f"{key!r}: {field} {getattr(got, field)} instead of {getattr(e, field)}")
  problems.extend(f"{key!r} was not asked for" for key in sorted(have))
  return problems


def _layout_differences(written: tensor_bundle.BundleIndex, destination: str) -> list[str]:
  """How the written data shard differs from what its index describes: one
  shard, every tensor's bytes following the last's, nothing missing or extra."""
  if written.header.num_shards != 1:
    return [f"the index names {written.header.num_shards} data shards instead of 1"]
  problems = []
  end = 0
  for e in sorted(written.entries, key=lambda e: e.offset):
    if e.offset != end:
      problems.append(f"{e.key!r} starts at byte {e.offset} instead of {end}")
    end = e.offset + e.size
  shard = tensor_bundle.shard_path(destination, 0, 1)
  size = os.path.getsize(shard) if os.path.exists(shard) else None
  if size is None:
    problems.append(f"the data shard {shard} is missing")
  elif size != end:
    problems.append(f"the data shard holds {size} bytes; the index describes {end} bytes")
  return problems


def _verify(
  source: tensor_bundle.BundleIndex,
  destination: str,
  mapping: Mapping[str, str],
  replace: Mapping[str, bytes],
) -> None:
  """Reads the destination back and compares it with the source: every key
  renamed as asked, with the source's dtype, shape, size and CRC, nothing
  else; the data shard as long as the index says; re-encoded values (the
  object graph) as written.

  Raises:
    RemapVerificationError: any difference (the first five are listed).
  """
  written = tensor_bundle.read_index(destination + ".index")
  problems = _entry_differences(source, written, mapping, replace)
  problems += _layout_differences(written, destination)
  if not problems:
    by_key = {e.key: e for e in written.entries}
    for key, value in replace.items():
      entry = by_key[mapping.get(key, key)]
      if tensor_bundle.read_string_scalar(destination, entry, 1) != value:
        problems.append(f"{entry.key!r} does not read back as written")
  if problems:
    raise RemapVerificationError(
      "The written checkpoint, read back, does not hold what the source and the rules promise.",
      received=f"{destination}: "
      + "; ".join(problems[:5])
      + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""),
      fix=(
        f"Do not use {destination}: delete it and run remap again (the source is untouched). "
        "If it happens again, report it with the source checkpoint's index."
      ),
    )


def print_progress(done: int, total: int) -> None:
  print(
    f"remap: {done:,}/{total:,} tensors ({done / max(total, 1):.0%})", file=sys.stderr, flush=True
  )
