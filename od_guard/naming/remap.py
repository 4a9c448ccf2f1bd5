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
chunk); only the index and the object graph are written anew. SRC is never
modified: a DST that reaches it (same real path, a symlinked directory, hard or
symbolic links to its files) is refused. Both files are written next to DST
under exclusive, unpredictable temporary names, checked against SRC entry by
entry, then moved into place as one journaled change (``DST.od_guard-journal``):
killed at any instant, DST is the old checkpoint (or absent), the new one, or
a change the next remap into that directory completes; it also removes the
temporary files of killed runs. DST is not overwritten unless asked. See
`bundle_writer.copy_bundle` and `od_guard.checkpoint.safe_output`.

Converting a TF1 name-based checkpoint for a target model (which needs
TensorFlow) is `od_guard.naming.tf1_conversion`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
import dataclasses
import itertools
import os
import re
import stat
import sys

import re2

from od_guard import _files
from od_guard import errors
from od_guard.checkpoint import bundle_writer
from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory
from od_guard.checkpoint import keys as checkpoint_keys
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import safe_output
from od_guard.checkpoint import tensor_bundle
from od_guard.naming import patterns

SCHEMA = "od_guard.remap/1"
_PROGRESS_BYTES = 256 << 20  # a progress line per this many bytes copied


class RemapError(errors.OdGuardError):
  """The rename cannot be applied as asked."""


class RemapVerificationError(RemapError):
  """The written destination, read back, does not hold what the source and the
  rules promise."""


_MAX_GROUPS = 100_000  # groups in one rule's OLD part (NEW is checked against each)
_MANY_RULES = 8  # with more rules than this, keys are matched against all at once
_PRIVATE_USE = (range(0xE000, 0xF900), range(0xF0000, 0xFFFFE), range(0x100000, 0x10FFFE))
_OLD_FIX = (
  "Fix the pattern (RE2 syntax: Python's `re` less backreferences and lookaround); "
  "escape special characters such as ( ) [ ] . * + ? with a backslash."
)


def _utf8(text: str) -> bytes:
  return text.encode("utf-8", "surrogatepass")


def _text(data: bytes) -> str:
  return data.decode("utf-8", "surrogatepass")


def _template(new: str, program, received: str) -> tuple[str | int, ...]:
  """NEW, checked against OLD's groups, as pieces: text, or a group's number.

  NEW means what it means to Python's `re.sub` (``\\1``, ``\\g<name>``,
  ``\\g<0>``, ``\\n``, ``\\\\``). It is expanded once, by Python's own
  template parser, against a stand-in match whose whole text and groups are
  private-use characters NEW does not contain, and split where those appear.

  Raises:
    RemapError: NEW refers to a group OLD does not have, ends with a lone
      backslash, or holds an escape Python's `re` refuses.
  """
  groups = program.groups
  if groups > _MAX_GROUPS:
    raise RemapError(
      f"The rule's OLD part has {groups:,} groups, more than {_MAX_GROUPS:,}.",
      received=received,
      fix="Use fewer groups: (?:...) groups without capturing.",
    )
  avoid = set(new)
  candidates = (chr(c) for block in _PRIVATE_USE for c in block)
  markers = list(itertools.islice((c for c in candidates if c not in avoid), groups + 1))
  names = {index: name for name, index in program.groupindex.items()}
  stand_in = re.escape(markers[0]) + "".join(
    f"(?P<{names[i]}>{re.escape(markers[i])})"
    if names.get(i, "").isidentifier()
    else f"({re.escape(markers[i])})"
    for i in range(1, groups + 1)
  )
  try:
    expanded = re.fullmatch(stand_in, "".join(markers)).expand(new)
  except (re.error, IndexError, ValueError) as e:
    raise RemapError(
      f"The rule's NEW part is not a valid replacement for its OLD part: {e}.",
      received=received,
      fix=(
        f"OLD has {groups} groups: refer to them as \\1 .. \\{groups} or \\g<name>"
        if groups > 1
        else "OLD has 1 group: refer to it as \\1 or \\g<name>"
        if groups
        else "OLD has no groups: put ( ) around the part of OLD to reuse"
      )
      + " (\\g<0> is the whole match); write a backslash as \\\\.",
    ) from e
  index = {m: i for i, m in enumerate(markers)}
  pieces: list[str | int] = []
  text: list[str] = []
  i = 0
  while i < len(expanded):
    ch = expanded[i]
    if ch in index:
      pieces.extend(("".join(text), index[ch]))
      text = []
      # The whole match (\g<0>) reads as every marker in a row.
      i += 1 + (groups if index[ch] == 0 else 0)
    else:
      text.append(ch)
      i += 1
  pieces.append("".join(text))
  return tuple(p for p in pieces if p != "")


@dataclasses.dataclass(frozen=True)
class Rule:
  """A rename rule.

  Attributes:
    old: a regular expression (RE2 syntax) matched at the start of a key.
    new: its replacement, as in Python's `re.sub` (``\\1``, ``\\g<name>``).

  Both sides are checked and compiled when the rule is made.

  Raises:
    RemapError: OLD is not a pattern RE2 compiles, or NEW refers to a group
      OLD does not have (or ends with a lone backslash, ...).
  """

  old: str
  new: str

  def __post_init__(self):
    received = patterns.shorten(repr(f"{self.old}->{self.new}"))
    if not isinstance(self.old, str) or not isinstance(self.new, str):
      raise RemapError(
        "A rename rule's OLD and NEW parts must be strings.",
        received=received,
        fix="Pass e.g. Rule('model/a/', 'model/b/').",
      )
    program = patterns.compile_pattern(
      self.old, "The rule's OLD part", error=RemapError, received=received, fix=_OLD_FIX
    )
    object.__setattr__(self, "_program", program)
    object.__setattr__(self, "_pieces", _template(self.new, program, received))

  def __getstate__(self) -> dict:
    return {"old": self.old, "new": self.new}

  def __setstate__(self, state: dict) -> None:
    object.__setattr__(self, "old", state["old"])
    object.__setattr__(self, "new", state["new"])
    self.__post_init__()

  @classmethod
  def parse(cls, text: str) -> Rule:
    if "->" not in text:
      raise RemapError(
        "A rename rule needs the form OLD->NEW.",
        received=patterns.shorten(repr(text)),
        fix="Write e.g. --rule 'model/CustomExtractor/->model/_feature_extractor/'.",
      )
    old, new = text.split("->", 1)
    return cls(old.strip(), new.strip())

  def _expand(self, match, data: bytes) -> str:
    out = []
    for piece in self._pieces:
      if isinstance(piece, int):
        out.append(_text(match.group(piece) or b""))
      else:
        out.append(piece)
    out.append(_text(data[match.end() :]))
    return "".join(out)

  def apply(self, key: str) -> str | None:
    """`key` renamed, or None when OLD does not match at its start."""
    data = _utf8(key)
    match = self._program.match(data)
    return None if match is None else self._expand(match, data)


def rename(key: str, rules: Sequence[Rule]) -> str:
  """`key` rewritten by the first rule that matches it; unchanged if none does."""
  for rule in rules:
    out = rule.apply(key)
    if out is not None:
      return out
  return key


def rename_keys(keys: Iterable[str], rules: Sequence[Rule]) -> dict[str, str]:
  """Each key's new name (see `rename`), checked for collisions.

  With many rules, every key is matched against all of them at once (one
  compiled program per chunk of rules), in time linear in the key's length.

  Args:
    keys: distinct checkpoint keys (or TF1 names).
    rules: rename rules, in order of precedence.

  Returns:
    {old key: new key} for every key.

  Raises:
    RemapError: two keys would get the same new name.
  """
  rules = list(rules)
  if len(rules) > _MANY_RULES:
    together = patterns.PatternSet(
      (r.old for r in rules), what="The rule's OLD part", error=RemapError, anchored=True
    )

    def new_name(key: str) -> str:
      first = together.first(key)
      if first is None:
        return key
      out = rules[first].apply(key)
      return rename(key, rules[first:]) if out is None else out  # None: never seen

  else:

    def new_name(key: str) -> str:
      return rename(key, rules)

  mapping: dict[str, str] = {}
  seen: dict[str, str] = {}
  for key in keys:
    new = new_name(key)
    if new in seen:
      raise RemapError(
        "Two keys would get the same new name.",
        received=f"{seen[new]!r} and {key!r} -> {new!r}",
        fix="Make the rules more specific.",
      )
    seen[new] = key
    mapping[key] = new
  return mapping


def _type(value) -> str:
  names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
  if value is None:
    return "null"
  return names.get(type(value), "a number" if isinstance(value, (int, float)) else "?")


def rules_from_report(path: str) -> list[Rule]:
  """The rename map in a preflight / guard JSON report (findings' data.renames,
  or an exact data.key_map).

  The report is read with `od_guard._files` (a regular file of at most
  `_files.REPORT_LIMIT` bytes, UTF-8 JSON) and its shape checked.

  Raises:
    RemapError: the report cannot be read, is not JSON of a report's shape,
      or proposes no rename map.
  """
  fix = "Pass the report.json that od-guard check --json or the guard wrote, unedited."
  report = _files.read_json(
    path,
    what="report",
    flag="--from-report",
    limit=_files.REPORT_LIMIT,
    error=RemapError,
    fix=fix,
  )

  def shape(where: str, value, expected: str) -> RemapError:
    return RemapError(
      f"The report {path!r} is not an od_guard report: {where} is {_type(value)}, not {expected}.",
      received=f"{path}: {where} = {patterns.brief(value)}",
      fix=fix,
    )

  if not isinstance(report, dict):
    raise shape("the document", report, "an object")
  findings = report.get("findings", [])
  if not isinstance(findings, list):
    raise shape("findings", findings, "an array")
  rules: list[Rule] = []
  seen: set[Rule] = set()
  for i, f in enumerate(findings):
    if not isinstance(f, dict):
      raise shape(f"findings[{i}]", f, "an object")
    data = f.get("data")
    data = {} if data is None else data
    if not isinstance(data, dict):
      raise shape(f"findings[{i}].data", data, "an object")
    renames = data.get("renames")
    renames = [] if renames is None else renames
    if not isinstance(renames, list):
      raise shape(f"findings[{i}].data.renames", renames, "an array")
    for j, r in enumerate(renames):
      where = f"findings[{i}].data.renames[{j}]"
      if not isinstance(r, dict):
        raise shape(where, r, 'an object {"old": ..., "new": ...}')
      for side in ("old", "new"):
        if not isinstance(r.get(side), str) or (side == "old" and not r[side]):
          raise shape(f"{where}.{side}", r.get(side), "a non-empty string")
      rule = Rule(re2.escape(r["old"]), r["new"].replace("\\", "\\\\"))
      if rule not in seen:
        seen.add(rule)
        rules.append(rule)
    key_map = data.get("key_map")
    key_map = {} if key_map is None else key_map
    if not isinstance(key_map, dict):
      raise shape(f"findings[{i}].data.key_map", key_map, "an object")
    for old, new in key_map.items():
      if not isinstance(new, str):
        raise shape(f"findings[{i}].data.key_map[{patterns.brief(old)}]", new, "a string")
      rules.append(Rule(re2.escape(old) + "$", new.replace("\\", "\\\\")))
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
    repaired: what was found in the destination's directory and repaired
      first (interrupted remaps completed, leftovers removed) or left alone.
  """

  source: str
  destination: str
  renamed: int
  unchanged: int
  object_graph_rewritten: bool
  verified: bool
  repaired: tuple[str, ...] = ()

  def to_dict(self) -> dict:
    return {"schema": SCHEMA, **dataclasses.asdict(self)}


def _first_paths(proto) -> dict[int, tuple[int, int]]:
  """The edge (parent node, child index) by which a breadth-first walk of an
  object graph first reaches each node: the edge its keys' paths go through.

  One record per node, never a path per node: a graph 20,000 nodes deep costs
  as much as a flat one with as many nodes.

  Raises:
    CorruptCheckpointError: a child names a node the graph does not have.
  """
  nodes = proto.nodes
  count = len(nodes)
  parents: dict[int, tuple[int, int]] = {}
  seen = bytearray(count)
  if count:
    seen[0] = 1
  order = [0] if count else []
  for node_id in order:
    for i, child in enumerate(nodes[node_id].children):
      child_id = child.node_id
      if not 0 <= child_id < count:
        raise errors.CorruptCheckpointError(
          "The checkpoint's object graph is damaged: an edge leads to a node it does not have.",
          received=f"node {node_id}, child {i}: node id {child_id} of {count} nodes",
          fix="Copy the checkpoint again from its source.",
        )
      if not seen[child_id]:
        seen[child_id] = 1
        parents[child_id] = (node_id, i)
        order.append(child_id)
  return parents


def _edge_renames(proto, mapping: Mapping[str, str]) -> dict[tuple[int, int], str]:
  """The new local name of each object-graph edge that `mapping` renames, by
  (parent node, child index).

  Each renamed key's path is checked by walking up from its node, one parent
  edge at a time (time proportional to the key's length, memory to the
  graph's nodes)."""
  by_key = {a.checkpoint_key: i for i, node in enumerate(proto.nodes) for a in node.attributes}
  parents = _first_paths(proto)
  nodes = proto.nodes
  renames: dict[tuple[int, int], str] = {}
  for old, new in mapping.items():
    if old == new or old not in by_key:
      continue
    old_path, _ = checkpoint_keys.split_key(old)
    new_path, _ = checkpoint_keys.split_key(new)
    moved = RemapError(
      "A rule moves a value to another depth of the object graph; only renames of "
      "scopes can be applied to an object-based checkpoint.",
      received=f"{old!r} -> {new!r}",
      fix="Rename whole scopes at the same depth (e.g. 'model/A/' -> 'model/B/').",
    )
    if len(old_path) != len(new_path):
      raise moved
    # Walk up from the value: the edges must spell the old path; rename each
    # edge whose name changes.
    node = by_key[old]
    edges = []
    for depth in range(len(old_path) - 1, -1, -1):
      edge = parents.get(node)
      if edge is None or nodes[edge[0]].children[edge[1]].local_name != old_path[depth]:
        raise moved
      edges.append((depth, edge))
      node = edge[0]
    if node != 0:
      raise moved
    for depth, edge in edges:
      if old_path[depth] != new_path[depth]:
        previous = renames.setdefault(edge, new_path[depth])
        if previous != new_path[depth]:
          raise RemapError(
            "Two rules rename the same scope differently.",
            received=f"{'/'.join(old_path[: depth + 1])!r}: {previous!r} vs {new_path[depth]!r}",
            fix="Make the rules agree.",
          )
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


_KERAS_FORMATS = ("keras3_weights", "keras2_hdf5")


def _check_source(inv: inventory.Inventory, destination: str, overwrite: bool) -> None:
  """Refuses what remap cannot or must not do before anything is written
  (what needs the destination's directory open is `_check_destination`)."""
  del overwrite  # checked against the open directory, after any repair
  if inv.format in _KERAS_FORMATS or inv.prefix.endswith((".keras", ".h5")):
    raise RemapError(
      "Remap rewrites TensorFlow checkpoints (.index + .data-*); this is a Keras file "
      f"({inv.format}), whose names are its layers' names.",
      received=inv.prefix,
      fix=(
        "Rename the layers in the model's code (or with a rules file) and load the file "
        "with model.load_weights(path); to remap names, save a TF checkpoint "
        "(tf.train.Checkpoint(model=model).write(prefix)) and remap that."
      ),
    )
  if inv.format not in (
    inventory.TF2_OBJECT_BASED,
    inventory.TF1_NAME_BASED,
    inventory.SAVED_MODEL,
  ):
    raise RemapError(
      "Remap rewrites TF checkpoints; this is not one.",
      received=f"{inv.prefix} ({inv.format})",
      fix="Pass a TF checkpoint prefix (the path before .index).",
    )
  if inv.data_shards != inventory.SHARDS_PRESENT:
    raise RemapError(
      "Remap copies tensor values, and the source's data shard is missing.",
      received=", ".join(inv.missing_shards) or inv.prefix,
      fix="Copy the .data-* files next to the .index first.",
    )
  if fileio.is_remote(destination):
    raise RemapError(
      "Remap writes local files only.",
      received=destination,
      fix="Write to a local prefix, then copy the two files (gsutil cp / aws s3 cp).",
    )
  base = os.path.basename(destination)
  if base in ("", ".", "..") or destination.endswith(("/", os.sep)) or os.path.isdir(destination):
    raise RemapError(
      "The destination names a directory; remap writes a checkpoint prefix "
      "(DST.index and DST.data-00000-of-00001).",
      received=destination,
      fix=f"Pass a prefix inside it, e.g. {os.path.join(destination, 'ckpt-1')!r}.",
    )
  if os.path.realpath(destination) == os.path.realpath(inv.prefix):
    raise _same_as_source(destination, inv.prefix)


def _same_as_source(destination: str, source: str, detail: str = "") -> RemapError:
  return RemapError(
    "The destination is the source"
    + (f" ({detail})" if detail else "")
    + "; remap never modifies its input.",
    received=f"{destination} -> {source}",
    fix="Pass another destination prefix (not reaching the source through symlinks or hard links).",
  )


def _prefix_files(names: Iterable[str], base: str) -> list[str]:
  """The names of prefix `base`'s checkpoint files among `names`."""
  shard = checkpoint_path.data_shard_names(base)
  return [n for n in names if n == base + ".index" or shard.match(n)]


def _source_identities(prefix: str) -> tuple[tuple[int, int] | None, set[tuple[int, int]]]:
  """The source directory's (st_dev, st_ino) and those of the source's files
  (and, for symlinks, of the links themselves)."""
  directory = os.path.dirname(os.path.abspath(prefix)) or "."
  base = os.path.basename(prefix)
  ids: set[tuple[int, int]] = set()
  try:
    names = os.listdir(directory)
  except OSError:
    names = []
  for name in _prefix_files(names, base):
    for follow in (True, False):
      found = safe_output.identity(os.path.join(directory, name), follow=follow)
      if found is not None:
        ids.add(found)
  return safe_output.identity(directory), ids


def _check_destination(
  d: safe_output.Directory,
  source: str,
  destination: str,
  overwrite: bool,
  source_dir: tuple[int, int] | None,
  source_ids: set[tuple[int, int]],
) -> None:
  """Refuses a destination that is the source by another path (a symlinked
  directory, a hard link, a symlinked file), that is taken by a directory, or
  that exists when `overwrite` is off."""
  base = os.path.basename(destination)
  if d.identity == source_dir and base == os.path.basename(source):
    raise _same_as_source(destination, source, f"{d.path!r} is the source's directory")
  names = d.listdir()
  for name in _prefix_files(names, base):
    for st in (d.stat(name), d.lstat(name)):
      if st is not None and (st.st_dev, st.st_ino) in source_ids:
        raise _same_as_source(destination, source, f"{d.join(name)} is one of the source's files")
    st = d.lstat(name)
    if st is not None and stat.S_ISDIR(st.st_mode):
      raise RemapError(
        "A directory stands where the destination's file must go.",
        received=d.join(name),
        fix="Choose another destination prefix.",
      )
  index, data = base + ".index", tensor_bundle.shard_path(base, 0, 1)
  if not overwrite and d.exists(index):
    raise RemapError(
      "The destination checkpoint exists.",
      received=d.join(index),
      fix="Pass --overwrite to replace it, or choose another prefix.",
    )
  if not overwrite and d.exists(data):
    raise RemapError(
      "A data shard of the destination exists (without its index).",
      received=d.join(data),
      fix="Pass --overwrite to replace it, or delete it, or choose another prefix.",
    )


def _repair(d: safe_output.Directory, source: str, source_ids: set) -> tuple[str, ...]:
  """Completes interrupted remaps into `d` and removes the temporary files
  killed runs left there; returns what it did and what it left alone."""
  same_dir = safe_output.identity(os.path.dirname(os.path.abspath(source)) or ".") == d.identity
  skip = frozenset([os.path.basename(source)]) if same_dir else frozenset()
  done, left = safe_output.recover(d, "remap", skip=skip)
  removed, left_too = safe_output.clean_leftovers(d, "remap", keep=frozenset(source_ids))
  notes = [f"completed an interrupted remap of {d.join(b)}" for b in done]
  notes += [f"removed {d.join(n)}, left by an interrupted remap" for n in removed]
  return tuple(notes + left + left_too)


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

  The destination is written crash-safely (see `bundle_writer.copy_bundle`):
  killed at any instant, it is the old checkpoint (or absent), the new one,
  or an interrupted change that the next remap into its directory completes
  (``DST.od_guard-journal``); temporary files a killed run left in that
  directory are removed by the next run. SOURCE is never written: a
  destination that reaches it (same real path, a symlinked directory, hard or
  symbolic links to its files) is refused, with or without `overwrite`.

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
    RemapError: the rules cannot be applied, DST is SRC, DST exists and
      overwrite is off, or SRC is not a TF checkpoint (a Keras file ...).
    RemapVerificationError: the destination, read back, differs from the source.
    DestinationError: DST cannot be written (below a file, read-only, no space,
      no permission).
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
  where = os.path.dirname(os.path.abspath(destination)) or "."
  safe_output.make_directories(where, "destination")
  with safe_output.Directory(where) as d:
    source_dir, source_ids = _source_identities(inv.prefix)
    repaired = _repair(d, inv.prefix, source_ids)
    try:
      _check_destination(d, inv.prefix, destination, overwrite, source_dir, source_ids)
    except RemapError as e:
      if not repaired:
        raise
      raise type(e)(
        e.what, received=f"{e.received} (first, this run {'; '.join(repaired)})", fix=e.fix
      ) from None

    def check(index_path: str, data_path: str) -> None:
      _verify(index, destination, mapping, replace, index_path=index_path, data_path=data_path)

    bundle_writer.copy_bundle(
      inv.prefix,
      index,
      destination,
      mapping,
      replace,
      progress=progress,
      progress_every=progress_every,
      overwrite=overwrite,
      check=check,
      directory=d,
      keep=frozenset(source_ids),
    )
  _verify(index, destination, mapping, replace)
  return RemapResult(
    source=inv.prefix,
    destination=destination,
    renamed=sum(1 for o, n in mapping.items() if o != n),
    unchanged=sum(1 for o, n in mapping.items() if o == n),
    object_graph_rewritten=bool(replace),
    verified=True,
    repaired=repaired,
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


def _layout_differences(
  written: tensor_bundle.BundleIndex, destination: str, data_path: str | None = None
) -> list[str]:
  """How the written data shard (`data_path`, by default the destination's)
  differs from what its index describes: one shard, every tensor's bytes
  following the last's, nothing missing or extra."""
  if written.header.num_shards != 1:
    return [f"the index names {written.header.num_shards} data shards instead of 1"]
  problems = []
  end = 0
  for e in sorted(written.entries, key=lambda e: e.offset):
    if e.offset != end:
      problems.append(f"{e.key!r} starts at byte {e.offset} instead of {end}")
    end = e.offset + e.size
  shard = data_path or tensor_bundle.shard_path(destination, 0, 1)
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
  *,
  index_path: str | None = None,
  data_path: str | None = None,
) -> None:
  """Reads the destination back (or the files `index_path` and `data_path`,
  before they take its name) and compares it with the source: every key
  renamed as asked, with the source's dtype, shape, size and CRC, nothing
  else; the data shard as long as the index says; re-encoded values (the
  object graph) byte for byte as written.

  Raises:
    RemapVerificationError: any difference (the first five are listed).
  """
  written = tensor_bundle.read_index(index_path or destination + ".index")
  problems = _entry_differences(source, written, mapping, replace)
  problems += _layout_differences(written, destination, data_path)
  if not problems:
    by_key = {e.key: e for e in written.entries}
    shard = data_path or tensor_bundle.shard_path(destination, 0, 1)
    with fileio.open_binary(shard) as f:
      for key, value in replace.items():
        entry = by_key[mapping.get(key, key)]
        f.seek(entry.offset)
        if f.read(entry.size) != bundle_writer.encode_string_scalar(value)[0]:
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
