"""Checkpoints written without TensorFlow, and what they hold, for the remap and
quarantine tests (remap_safety_test, remap_kill_test).

`write_checkpoint` writes a real TF2 object-based layout (index table, data
shard, object graph) with od_guard's own bundle writer;
remap_safety_test.test_generated_checkpoint_is_what_tf_reads checks it against
TensorFlow where TensorFlow is installed.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from od_guard.checkpoint import bundle_writer
from od_guard.checkpoint import inventory
from od_guard.checkpoint import tensor_bundle


def write_checkpoint(prefix: str, sizes, scope: str = "a", seed: int = 0) -> str:
  """A TF2 object-based checkpoint (root -> model -> scope -> w0..wN, float32
  vectors of `sizes` elements, random values, stored CRCs), written without
  TensorFlow. Returns the prefix."""
  import google_crc32c
  from tensorboard.compat.proto import trackable_object_graph_pb2

  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  rng = np.random.default_rng(seed)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.nodes.add().children.add(node_id=1, local_name="model")
  graph.nodes.add().children.add(node_id=2, local_name=scope)
  graph.nodes.add()
  records, data = [], bytearray()
  for i, n in enumerate(sizes):
    graph.nodes[2].children.add(node_id=len(graph.nodes), local_name=f"w{i}")
    key = f"model/{scope}/w{i}/.ATTRIBUTES/VARIABLE_VALUE"
    graph.nodes.add().attributes.add(name="VARIABLE_VALUE", full_name=f"w{i}", checkpoint_key=key)
    raw = rng.standard_normal(n, dtype=np.float32).tobytes()
    crc = tensor_bundle.mask_crc(google_crc32c.value(raw))
    entry = bundle_writer._encode_entry("float32", (n,), len(data), len(raw), crc)
    records.append((key.encode(), entry))
    data += raw
  payload, crc = bundle_writer.encode_string_scalar(graph.SerializeToString())
  entry = bundle_writer._encode_entry("string", (), len(data), len(payload), crc)
  records.append((inventory.OBJECT_GRAPH_KEY.encode(), entry))
  data += payload
  with open(tensor_bundle.shard_path(prefix, 0, 1), "wb") as f:
    f.write(data)
  with open(prefix + ".index", "wb") as f:
    f.write(bundle_writer._index_bytes(records))
  return prefix


def state(prefix: str) -> dict | None:
  """What a checkpoint holds, comparable across copies: key -> (dtype, shape,
  sha256 of its bytes), the object graph's keys; None if it has no index."""
  if not os.path.exists(prefix + ".index"):
    return None
  index = tensor_bundle.read_index(prefix + ".index")
  shards = index.header.num_shards
  out = {}
  for e in index.entries:
    with open(tensor_bundle.shard_path(prefix, e.shard_id, shards), "rb") as f:
      f.seek(e.offset)
      raw = f.read(e.size)
    assert len(raw) == e.size
    if e.key == inventory.OBJECT_GRAPH_KEY:
      out[e.key] = tuple(sorted(inventory_keys(prefix)))
    else:
      out[e.key] = (e.dtype, e.shape, e.crc32c, hashlib.sha256(raw).hexdigest())
  return out


def inventory_keys(prefix: str) -> list[str]:
  inv = inventory.read_inventory(prefix, object_graph=inventory.OBJECT_GRAPH_FULL)
  return [a.checkpoint_key for node in inv.object_graph_proto.nodes for a in node.attributes]


def leftovers(directory) -> list[str]:
  return [n for n in os.listdir(directory) if n.startswith(".od_guard-") or "od_guard-journal" in n]
