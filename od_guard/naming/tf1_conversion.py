"""Converting a TF1 name-based checkpoint into a TF2 object-based one, for a
target model.

    from od_guard.naming import rename_rules, tf1_conversion

    tf1_conversion.tf1_to_object_based(
        "legacy/model.ckpt", "converted/ckpt", {"model": model},
        rules=[rename_rules.Rule.parse("FeatureExtractor/MobilenetV2/->backbone/")])

A TF1 checkpoint has no object graph, so unlike `remap` (which rewrites names
without TensorFlow) the conversion needs the target: its variables say which
TF1 value each one takes (by TF variable name, after the rename rules, with the
same shape), and the target itself writes the object-based checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import os
from typing import Any

from od_guard.checkpoint import inventory
from od_guard.naming import rename_rules
from od_guard.restore import live_graph
from od_guard.restore import matching


@dataclasses.dataclass(frozen=True)
class ConversionResult:
  """What `tf1_to_object_based` wrote.

  Attributes:
    source: the TF1 checkpoint prefix.
    destination: the written object-based prefix.
    converted: TF1 values the target took.
    unused: TF1 model values no target variable took, by name.
  """

  source: str
  destination: str
  converted: int
  unused: tuple[str, ...]

  def to_dict(self) -> dict:
    return {"schema": "od_guard.convert/1", **dataclasses.asdict(self), "unused": list(self.unused)}


def tf1_to_object_based(
  source: str,
  destination: str,
  roots: Mapping[str, Any],
  *,
  rules: Sequence[rename_rules.Rule] = (),
  overwrite: bool = False,
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

  Returns:
    What was converted, and which TF1 values were left over.

  Raises:
    RemapError: not a TF1 checkpoint, two TF1 names renamed alike, a target
      variable without a value, a shape that does not fit, or the destination
      exists.
  """
  inv = _read_tf1(source, destination, overwrite)
  renamed = rename_rules.rename_keys((v.key for v in inv.of_kind(inventory.MODEL)), rules)
  by_new_name = {new: old for old, new in renamed.items()}
  assignments = _assignments(inv, roots, by_new_name)
  _write(roots, assignments, inv.prefix, destination)
  used = {old for _, old in assignments}
  return ConversionResult(
    source=inv.prefix,
    destination=destination,
    converted=len(used),
    unused=tuple(sorted(old for old in renamed if old not in used)),
  )


def _read_tf1(source: str, destination: str, overwrite: bool) -> inventory.Inventory:
  """The source's inventory, once it is known to be a TF1 checkpoint and the
  destination free."""
  inv = inventory.read_inventory(source, object_graph=inventory.OBJECT_GRAPH_NONE)
  if inv.format != inventory.TF1_NAME_BASED:
    raise rename_rules.RemapError(
      "Only TF1 name-based checkpoints are converted.",
      received=f"{inv.prefix} ({inv.format})",
      fix="An object-based checkpoint is renamed with remap rules instead.",
    )
  if os.path.exists(destination + ".index") and not overwrite:
    raise rename_rules.RemapError(
      "The destination checkpoint exists.",
      received=destination + ".index",
      fix="Pass overwrite=True, or choose another prefix.",
    )
  return inv


def _assignments(
  inv: inventory.Inventory, roots: Mapping[str, Any], by_new_name: Mapping[str, str]
) -> list[tuple[Any, str]]:
  """Pairs every variable of the target with the TF1 name of its value.

  Raises:
    RemapError: a target variable has no value, or one of another shape.
  """
  graph = live_graph.capture(roots)
  objects = live_graph.variables(roots)
  report = matching.match(graph, inv, names=by_new_name)
  uid_of = {v.path: uid for uid, v in graph.variables.items()}
  missing = [
    f"{u.path} (variable name {graph.variables[uid_of[u.path]].name!r})" for u in report.missing
  ]
  bad_shapes = [
    f"{m.key}: {inventory.format_shape(m.checkpoint)} vs "
    f"{m.path}: {inventory.format_shape(m.model)}"
    for m in report.shape_mismatches
  ] + [f"{m.key}: {m.checkpoint} vs {m.path}: {m.model}" for m in report.dtype_mismatches]
  if missing or bad_shapes:
    raise _misfit(missing, bad_shapes)
  return [(objects[uid_of[b.path]], b.key) for b in report.restored]


def _misfit(missing: list[str], bad_shapes: list[str]) -> rename_rules.RemapError:
  return rename_rules.RemapError(
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


def _write(
  roots: Mapping[str, Any], assignments: list[tuple[Any, str]], source: str, destination: str
) -> None:
  """Assigns the TF1 values to the target's variables, then saves the target
  object-based at `destination`."""
  import tensorflow as tf

  reader = tf.train.load_checkpoint(source)
  for variable, old in assignments:
    variable.assign(reader.get_tensor(old))
  os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
  ckpt = tf.train.Checkpoint(**roots)
  _ = ckpt.save_counter  # created, as save() would
  ckpt.write(destination)
