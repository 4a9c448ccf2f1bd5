"""The object graph (`_CHECKPOINTABLE_OBJECT_GRAPH`) of a TF2 checkpoint.

Two ways to read it:

* `summarize` scans the serialized `TrackableObjectGraph` without building
  messages: the number of nodes and the root's children. It is what
  `od-guard inspect` needs, and it stays fast on graphs of 100,000 nodes even
  where protobuf runs in pure Python (protobuf 3.20 on Python 3.11).
* `parse` builds the full message with TensorBoard's bundled copy of TF's
  `trackable_object_graph.proto` (no TensorFlow import), for matching.
"""

from __future__ import annotations

import dataclasses

from od_guard import errors
from od_guard.checkpoint import limits
from od_guard.checkpoint import proto_wire


@dataclasses.dataclass(frozen=True)
class ObjectGraphSummary:
  """What the object graph says at a glance."""

  num_nodes: int
  root_children: tuple[str, ...]

  def to_dict(self) -> dict:
    return {"num_nodes": self.num_nodes, "root_children": list(self.root_children)}


def _damaged(where: str, detail: str) -> errors.CorruptCheckpointError:
  return errors.CorruptCheckpointError(
    f"The object graph in {where!r} does not decode: {detail}.",
    received=where,
    fix="Copy the checkpoint's data shard again from its source.",
  )


def _beyond_limit(where: str, detail: str) -> errors.CorruptCheckpointError:
  return errors.CorruptCheckpointError(
    f"The object graph in {where!r} is beyond od_guard's limits: {detail}.",
    received=where,
    fix=(
      "No TensorFlow program writes such a graph: the data shard is damaged or was "
      "crafted. Copy the checkpoint again from its source."
    ),
  )


def summarize(raw: bytes, where: str = "") -> ObjectGraphSummary:
  """Counts the nodes and names the root's children, without a full parse."""
  root_children: list[str] = []
  num_nodes = 0
  pos = 0
  end = len(raw)
  varint = proto_wire.decode_varint
  try:
    while pos < end:
      tag = raw[pos]
      pos += 1
      if tag != 0x0A:
        if tag & 0x80:
          tag, pos = varint(raw, pos - 1)  # anything but `repeated TrackableObject nodes = 1`
        pos = proto_wire.skip_field(raw, pos, tag & 7)
        continue
      b = raw[pos]
      n = b & 0x7F
      pos += 1
      shift = 7
      while b & 0x80:  # inline varint: once per node
        if shift >= 7 * limits.MAX_VARINT_BYTES:
          raise ValueError(f"a varint is longer than {limits.MAX_VARINT_BYTES} bytes")
        b = raw[pos]
        n |= (b & 0x7F) << shift
        shift += 7
        pos += 1
      if num_nodes == 0:
        for f, w, cstart, cstop in proto_wire.fields(raw, pos, pos + n):
          if f == 1 and w == 2:  # ObjectReference children
            for g, x, v, vstop in proto_wire.fields(raw, cstart, cstop):
              if g == 2 and x == 2:
                root_children.append(raw[v:vstop].decode("utf-8"))
      pos += n
      num_nodes += 1
    if pos != end:
      raise ValueError("the last node runs past the end")
  except (ValueError, IndexError, UnicodeDecodeError) as e:
    raise _damaged(where, str(e) or type(e).__name__) from e
  if num_nodes > limits.MAX_OBJECT_GRAPH_NODES:
    raise _beyond_limit(
      where, f"{num_nodes:,} nodes (the limit is {limits.MAX_OBJECT_GRAPH_NODES:,})"
    )
  return ObjectGraphSummary(num_nodes=num_nodes, root_children=tuple(root_children))


def parse(raw: bytes, where: str = ""):
  """Parses the whole graph into a `TrackableObjectGraph` message."""
  from google.protobuf import message
  from tensorboard.compat.proto import trackable_object_graph_pb2

  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  try:
    graph.ParseFromString(raw)
  except (message.DecodeError, ValueError, TypeError, RecursionError, OverflowError) as e:
    raise _damaged(where, str(e) or type(e).__name__) from e
  check(graph, where)
  return graph


def check(graph, where: str = "") -> int:
  """Checks a parsed graph's references and depth; returns its depth.

  Every child, slot variable and original variable id names a node of the
  graph, and every node the root reaches is at most MAX_OBJECT_GRAPH_DEPTH
  references below it (breadth first, each node once: shared objects and
  cycles, which TensorFlow allows, are walked once).

  Raises:
    CorruptCheckpointError: an id out of range, or a graph too deep or too large.
  """
  nodes = graph.nodes
  n = len(nodes)
  if n > limits.MAX_OBJECT_GRAPH_NODES:
    raise _beyond_limit(where, f"{n:,} nodes (the limit is {limits.MAX_OBJECT_GRAPH_NODES:,})")
  if not n:
    return 0

  def check_ids(node_id: int, node) -> None:
    for child in node.children:
      if not 0 <= child.node_id < n:
        raise _damaged(
          where,
          f"node {node_id} has a child {limits.printable(child.local_name[:100])!r} with id"
          f" {child.node_id}, but the graph has {n} nodes",
        )
    for slot in node.slot_variables:
      for ref in (slot.original_variable_node_id, slot.slot_variable_node_id):
        if not 0 <= ref < n:
          raise _damaged(where, f"node {node_id} has a slot variable that names node {ref} of {n}")

  seen = bytearray(n)
  seen[0] = 1
  frontier = [0]
  level = 0
  while frontier:
    if level > limits.MAX_OBJECT_GRAPH_DEPTH:
      raise _beyond_limit(
        where, f"objects more than {limits.MAX_OBJECT_GRAPH_DEPTH:,} references below the root"
      )
    following = []
    for node_id in frontier:
      node = nodes[node_id]
      check_ids(node_id, node)
      for child in node.children:
        c = child.node_id
        if not seen[c]:
          seen[c] = 1
          following.append(c)
    frontier = following
    level += 1
  if seen.count(0):  # nodes the root does not reach: their references too
    for node_id in range(n):
      if not seen[node_id]:
        check_ids(node_id, nodes[node_id])
  return level - 1
