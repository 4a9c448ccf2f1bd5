"""The object graph of a renamed TF2 checkpoint (`rewrite_object_graph`).

A TF2 object-based checkpoint names each value twice: by its key, and by the
path of edges from the root object in its object graph. Renaming keys
therefore renames the edges their paths go through; a rename that would move a
value to another depth of the graph cannot be written as an object graph and is
refused. Pure data: the graph is a `TrackableObjectGraph` message in, a
rewritten copy out.
"""

from __future__ import annotations

from collections.abc import Mapping

from od_guard import errors
from od_guard.checkpoint import keys as checkpoint_keys
from od_guard.naming import rename_rules

RemapError = rename_rules.RemapError  # the rename errors, raised here too


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
