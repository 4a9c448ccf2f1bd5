"""Terminal renderings of inventories and checkpoint diffs."""

from __future__ import annotations

import math

from od_guard.checkpoint import diff as checkpoint_diff
from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.checkpoint import limits

_p = limits.printable

FORMAT_NAMES = {
  inventory.TF2_OBJECT_BASED: "TF2 object-based checkpoint",
  inventory.TF1_NAME_BASED: "TF1 name-based checkpoint",
  inventory.SAVED_MODEL: "SavedModel variables (object-based)",
  inventory.KERAS3_WEIGHTS: "Keras 3 weights (HDF5)",
  inventory.KERAS2_HDF5: "Keras 2 weights (HDF5)",
}
_KIND_NAMES = {
  inventory.MODEL: "model",
  inventory.OPTIMIZER_SLOT: "optimizer slots",
  inventory.OPTIMIZER_STATE: "optimizer state",
  inventory.BOOKKEEPING: "bookkeeping",
}


def human_bytes(n: int) -> str:
  if n >= limits.MAX_PRINTED:
    return "> 10^100 B"
  for unit in ("B", "KB", "MB", "GB"):
    if n < 1024 or unit == "GB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1024
  return f"{n:.1f} GB"


def _totals_text(t: inventory.Totals) -> str:
  return (
    f"{limits.count_text(t.tensors):>6} tensors {limits.count_text(t.params):>14} params "
    f"{human_bytes(t.bytes):>10}"
  )


def _tree_lines(inv: inventory.Inventory, depth: int) -> list[str]:
  """A tree of path prefixes down to `depth`, numbered siblings folded."""
  nodes: dict[tuple[str, ...], list[int]] = {}
  children: dict[tuple[str, ...], set[str]] = {}
  prod = math.prod
  for v in inv.variables:
    parts = tuple(v.path.split("/", depth)[:depth])
    params = prod(v.shape) if v.shape else 1
    for d in range(1, len(parts) + 1):
      key = parts[:d]
      a = nodes.get(key)
      if a is None:
        a = nodes[key] = [0, 0, 0]
        children.setdefault(parts[: d - 1], set()).add(parts[d - 1])
      a[0] += 1
      a[1] += params
      a[2] += v.nbytes
  lines: list[str] = []
  # Depth first, iteratively: each stack item is a list of labels still to show.
  stack: list[tuple[tuple[str, ...], list[str], set[str]]] = []

  def push(parent: tuple[str, ...]) -> None:
    names = children.get(parent, set())
    folded = key_folding.fold_numbered(names)
    stack.append((parent, folded[::-1], names))

  push(())
  while stack:
    parent, labels, names = stack[-1]
    if not labels:
      stack.pop()
      continue
    label = labels.pop()
    indent = "  " * len(parent)
    width = max(1, 60 - len(indent))
    if label in names:
      key = parent + (label,)
      lines.append(f"  {indent}{_p(label):<{width}} {_totals_text(inventory.Totals(*nodes[key]))}")
      push(key)
    else:
      stem = label.split("{", 1)[0]
      parts = [
        nodes[parent + (c,)] for c in names if c.startswith(stem) and c[len(stem) :].isdigit()
      ]
      total = inventory.Totals(
        sum(t[0] for t in parts), sum(t[1] for t in parts), sum(t[2] for t in parts)
      )
      lines.append(f"  {indent}{_p(label):<{width}} {_totals_text(total)}")
  return lines


def render_inventory(inv: inventory.Inventory, *, depth: int = 3) -> str:
  """The `od-guard inspect` text report."""
  out = [
    f"checkpoint: {_p(inv.resolved.given)}",
    f"resolved:   {_p(inv.prefix)}",
    f"format:     {FORMAT_NAMES.get(inv.format, inv.format)}",
  ]
  if inv.data_shards == inventory.SHARDS_MISSING:
    out.append(
      "data:       data shard missing ("
      + ", ".join(_p(m.rsplit("/", 1)[-1]) for m in inv.missing_shards)
      + ")"
    )
  elif inv.data_shards == inventory.SHARDS_PRESENT:
    out.append(f"data:       {inv.num_shards} data shard(s) present")
  if inv.object_graph:
    out.append(
      f"objects:    {inv.object_graph.num_nodes:,} nodes in the object graph; "
      f"root children: {', '.join(map(_p, inv.object_graph.root_children))}"
    )
  for note in inv.notes:
    out.append(f"note:       {_p(note)}")
  out.append("")
  out.append(f"total        {_totals_text(inv.totals())}")
  for kind, t in inv.totals_by_kind().items():
    if t.tensors:
      out.append(f"  {_KIND_NAMES[kind]:<10} {_totals_text(t)}")
  by_component = inv.totals_by_component()
  if by_component:
    out.append("")
    out.append("components (model values)")
    for c, t in by_component.items():
      out.append(f"  {c:<10} {_totals_text(t)}")
  out.append("")
  out.append(f"tree (depth {depth})")
  out.extend(_tree_lines(inv, depth))
  return "\n".join(out)


def render_diff(d: checkpoint_diff.CheckpointDiff) -> str:
  """The `od-guard diff` text report."""
  out = [
    f"A: {_p(d.a.prefix)} ({FORMAT_NAMES.get(d.a.format, d.a.format)})",
    f"B: {_p(d.b.prefix)} ({FORMAT_NAMES.get(d.b.format, d.b.format)})",
  ]
  if d.identical:
    out.append(f"identical: {d.unchanged} keys with the same shapes and dtypes")
    return "\n".join(out)
  out.append(
    f"{d.unchanged} unchanged, {len(d.added)} added, {len(d.removed)} removed, "
    f"{len(d.shape_changed)} shape changed, {len(d.dtype_changed)} dtype changed"
  )
  for title, keys in (("added (only in B)", d.added), ("removed (only in A)", d.removed)):
    if keys:
      out.append(f"{title}:")
      out.extend(f"  {_p(line)}" for line in key_folding.fold_keys(keys))
  for title, changes in (("shape changed", d.shape_changed), ("dtype changed", d.dtype_changed)):
    if changes:
      out.append(f"{title}:")
      for c in changes[:20]:
        out.append(f"  {_p(c.key)}: {_p(str(c.before))} -> {_p(str(c.after))}")
      if len(changes) > 20:
        out.append(f"  ... and {len(changes) - 20} more")
  return "\n".join(out)
