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
import os
import stat
import sys

from od_guard import _lazy
from od_guard.checkpoint import bundle_writer
from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory
from od_guard.checkpoint import journal
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import safe_output
from od_guard.checkpoint import tensor_bundle
from od_guard.naming import object_graph_rewrite
from od_guard.naming import rename_rules

SCHEMA = "od_guard.remap/1"
_PROGRESS_BYTES = 256 << 20  # a progress line per this many bytes copied

RemapError = rename_rules.RemapError  # what every refusal here raises
# The rules and the object-graph rewrite live in rename_rules and object_graph_rewrite;
# still importable from here (Orbax-style), where `od-guard remap`, tf1_conversion and users
# find them.
__getattr__ = _lazy.module_getattr(
  __name__,
  {
    **dict.fromkeys(("Rule", "rename", "rename_keys", "rules_from_report"), rename_rules.__name__),
    "rewrite_object_graph": object_graph_rewrite.__name__,
  },
)


class RemapVerificationError(RemapError):
  """The written destination, read back, does not hold what the source and the
  rules promise."""


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
  done, left = journal.recover(d, "remap", skip=skip)
  removed, left_too = journal.clean_leftovers(d, "remap", keep=frozenset(source_ids))
  notes = [f"completed an interrupted remap of {d.join(b)}" for b in done]
  notes += [f"removed {d.join(n)}, left by an interrupted remap" for n in removed]
  return tuple(notes + left + left_too)


def _prepare_destination(
  d: safe_output.Directory, source: str, destination: str, overwrite: bool
) -> tuple[set[tuple[int, int]], tuple[str, ...]]:
  """Repairs the destination's directory (`_repair`), then checks the
  destination (`_check_destination`); returns the source files' identities
  and what the repair did. A refusal after a repair says what was repaired."""
  source_dir, source_ids = _source_identities(source)
  repaired = _repair(d, source, source_ids)
  try:
    _check_destination(d, source, destination, overwrite, source_dir, source_ids)
  except RemapError as e:
    if not repaired:
      raise
    raise type(e)(
      e.what, received=f"{e.received} (first, this run {'; '.join(repaired)})", fix=e.fix
    ) from None
  return source_ids, repaired


def remap(
  source: str,
  destination: str,
  rules: Sequence[rename_rules.Rule],
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
  mapping = rename_rules.rename_keys((v.key for v in inv.variables), rules)
  replace: dict[str, bytes] = {}
  if inv.object_graph_proto is not None:
    proto = object_graph_rewrite.rewrite_object_graph(inv.object_graph_proto, mapping)
    replace[inventory.OBJECT_GRAPH_KEY] = proto.SerializeToString()
  index = tensor_bundle.read_index(inv.prefix + ".index")
  where = os.path.dirname(os.path.abspath(destination)) or "."
  safe_output.make_directories(where, "destination")
  with safe_output.Directory(where) as d:
    source_ids, repaired = _prepare_destination(d, inv.prefix, destination, overwrite)

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
