"""Terminal renderings of inventories and checkpoint diffs."""

from __future__ import annotations

from od_guard.checkpoint import diff as checkpoint_diff
from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding

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
  for unit in ("B", "KB", "MB", "GB"):
    if n < 1024 or unit == "GB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1024
  return f"{n:.1f} GB"


def _totals_text(t: inventory.Totals) -> str:
  return f"{t.tensors:>6,} tensors {t.params:>14,} params {human_bytes(t.bytes):>10}"


def _tree_lines(inv: inventory.Inventory, depth: int) -> list[str]:
  """A tree of path prefixes down to `depth`, numbered siblings folded."""
  split = [(v, tuple(v.path.split("/"))) for v in inv.variables]
  nodes: dict[tuple[str, ...], inventory.Totals] = {}
  for d in range(1, depth + 1):
    at_depth = [(v, parts[:d]) for v, parts in split if len(parts) >= d]
    lookup = {id(v): key for v, key in at_depth}
    nodes.update(inventory.sum_by((v for v, _ in at_depth), lambda v, lookup=lookup: lookup[id(v)]))
  lines: list[str] = []

  def walk(parent: tuple[str, ...]) -> None:
    children = sorted(
      {k[len(parent)] for k in nodes if len(k) == len(parent) + 1 and k[: len(parent)] == parent},
      key=key_folding.natural_key,
    )
    folded = key_folding.fold_numbered(children)
    for label in folded:
      indent = "  " * len(parent)
      if label in children:
        key = parent + (label,)
        lines.append(f"  {indent}{label:<{max(1, 60 - len(indent))}} {_totals_text(nodes[key])}")
        walk(key)
      else:
        stem = label.split("{", 1)[0]
        members = [c for c in children if c.startswith(stem) and c[len(stem) :].isdigit()]
        parts = [nodes[parent + (c,)] for c in members]
        total = inventory.Totals(
          sum(t.tensors for t in parts), sum(t.params for t in parts), sum(t.bytes for t in parts)
        )
        lines.append(f"  {indent}{label:<{max(1, 60 - len(indent))}} {_totals_text(total)}")

  walk(())
  return lines


def render_inventory(inv: inventory.Inventory, *, depth: int = 3) -> str:
  """The `od-guard inspect` text report."""
  out = [
    f"checkpoint: {inv.resolved.given}",
    f"resolved:   {inv.prefix}",
    f"format:     {FORMAT_NAMES.get(inv.format, inv.format)}",
  ]
  if inv.data_shards == inventory.SHARDS_MISSING:
    out.append(
      "data:       data shard missing ("
      + ", ".join(m.rsplit("/", 1)[-1] for m in inv.missing_shards)
      + ")"
    )
  elif inv.data_shards == inventory.SHARDS_PRESENT:
    out.append(f"data:       {inv.num_shards} data shard(s) present")
  if inv.object_graph:
    out.append(
      f"objects:    {inv.object_graph.num_nodes:,} nodes in the object graph; "
      f"root children: {', '.join(inv.object_graph.root_children)}"
    )
  for note in inv.notes:
    out.append(f"note:       {note}")
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
    f"A: {d.a.prefix} ({FORMAT_NAMES.get(d.a.format, d.a.format)})",
    f"B: {d.b.prefix} ({FORMAT_NAMES.get(d.b.format, d.b.format)})",
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
      out.extend(f"  {line}" for line in key_folding.fold_keys(keys))
  for title, changes in (("shape changed", d.shape_changed), ("dtype changed", d.dtype_changed)):
    if changes:
      out.append(f"{title}:")
      for c in changes[:20]:
        out.append(f"  {c.key}: {c.before} -> {c.after}")
      if len(changes) > 20:
        out.append(f"  ... and {len(changes) - 20} more")
  return "\n".join(out)
