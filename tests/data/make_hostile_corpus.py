"""Writes od_guard's hostile corpus: inputs that a damaged disk, an interrupted
copy, an unlucky user or an attacker could hand to od_guard.

Every input is generated here, without TensorFlow (the checkpoints are written
byte by byte in TensorFlow's formats), into a directory given on the command
line or by a test (`build(root)`). Nothing is stored in the repository.

Each case is a `Case`: the file or directory a command is pointed at, which
commands it applies to, and the exit codes that are correct for it (2, a typed
error, for nearly all of them; 0 or 1 where the input is in fact fine or holds
findings rather than damage).

Usage: python tests/data/make_hostile_corpus.py OUT_DIR
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import random
import struct
import sys
import zipfile

# Commands of a case. CKPT: the input is a checkpoint (inspect, inspect --json,
# diff, verify, lint, check --static, remap, and the Python readers); RULES /
# REPORT / CONFIG: a user file given to lint --rules / remap --from-report /
# check --static --pipeline_config_path.
CKPT = "checkpoint"
RULES = "rules"
REPORT = "report"
CONFIG = "config"


@dataclasses.dataclass
class Case:
  """One hostile input.

  Attributes:
    name: unique, for test ids.
    kind: CKPT, RULES, REPORT or CONFIG.
    target: the path commands are given.
    ok: the right exit codes per command ("inspect", "verify", ...; "*" for
      the others); a command not named gets (2,): a typed error.
  """

  name: str
  kind: str
  target: str
  ok: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------
# TensorFlow's formats, written by hand.


def varint(n: int) -> bytes:
  if n < 0:
    n += 1 << 64
  out = bytearray()
  while True:
    b = n & 0x7F
    n >>= 7
    if n:
      out.append(b | 0x80)
    else:
      out.append(b)
      return bytes(out)


def field(num: int, wire: int, payload) -> bytes:
  tag = varint(num << 3 | wire)
  if wire == 0:
    return tag + varint(payload)
  if wire == 2:
    return tag + varint(len(payload)) + payload
  if wire == 5:
    return tag + struct.pack("<I", payload)
  raise ValueError(wire)


def crc32c(data: bytes, crc: int = 0) -> int:
  import google_crc32c

  return google_crc32c.extend(crc, data)


def mask(crc: int) -> int:
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def entry(
  dtype: int,
  shape,
  shard: int,
  offset: int,
  size: int,
  crc: int,
  slices: bytes | None = None,
  raw_shape: bytes | None = None,
) -> bytes:
  dims = raw_shape
  if dims is None:
    dims = b"".join(field(2, 2, field(1, 0, d) if d else b"") for d in shape)
  out = field(1, 0, dtype) + field(2, 2, dims)
  if shard:
    out += field(3, 0, shard)
  if offset:
    out += field(4, 0, offset)
  if size:
    out += field(5, 0, size)
  if crc:
    out += field(6, 5, crc)
  if slices is not None:
    out += field(7, 2, slices)
  return out


def header(num_shards: int = 1) -> bytes:
  return field(1, 0, num_shards) + field(3, 2, field(1, 0, 1))


def table(
  records: list[tuple[bytes, bytes]],
  *,
  block_size: int = 4096,
  snappy: bool = False,
  restart_interval: int = 16,
) -> bytes:
  """A LevelDB sorted table of `records` (in the order given: callers may
  pass them out of order on purpose)."""
  out = bytearray()
  index: list[tuple[bytes, bytes]] = []

  def emit(contents: bytes) -> bytes:
    kind = 0
    if snappy:
      import cramjam

      contents = bytes(cramjam.snappy.compress_raw(contents))
      kind = 1
    handle = varint(len(out)) + varint(len(contents))
    trailer = bytes([kind])
    out.extend(contents + trailer + struct.pack("<I", mask(crc32c(contents + trailer))))
    return handle

  def block_bytes(buf: bytes, restarts: list[int]) -> bytes:
    return buf + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))

  buf, restarts, counter, last, last_key = bytearray(), [0], 0, b"", None
  for key, value in records:
    shared = 0
    if counter < restart_interval:
      while shared < min(len(last), len(key)) and last[shared] == key[shared]:
        shared += 1
    else:
      restarts.append(len(buf))
      counter = 0
    buf += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
    last = last_key = key
    counter += 1
    if len(buf) >= block_size:
      index.append((last_key, emit(block_bytes(bytes(buf), restarts))))
      buf, restarts, counter, last, last_key = bytearray(), [0], 0, b"", None
  if last_key is not None:
    index.append((last_key, emit(block_bytes(bytes(buf), restarts))))
  meta = emit(block_bytes(b"", [0]))
  ibuf, irestarts = bytearray(), []
  for key, handle in index:
    irestarts.append(len(ibuf))
    ibuf += varint(0) + varint(len(key)) + varint(len(handle)) + key + handle
  snappy_saved, snappy = snappy, False
  ihandle = emit(block_bytes(bytes(ibuf), irestarts or [0]))
  snappy = snappy_saved
  footer = (meta + ihandle).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
  return bytes(out) + footer


def string_tensor(value: bytes) -> tuple[bytes, int]:
  """A scalar DT_STRING tensor's bytes and its entry's masked CRC."""
  length = struct.pack("<I", len(value))
  check = struct.pack("<I", mask(crc32c(length)))
  crc = crc32c(value, crc32c(check, crc32c(length)))
  return varint(len(value)) + check + value, mask(crc)


def object_graph(nodes: list[tuple[list[tuple[int, str]], list[tuple[str, str]]]]) -> bytes:
  """A TrackableObjectGraph: per node, (children (id, name), attributes (name, key))."""
  out = b""
  for children, attributes in nodes:
    node = b""
    for node_id, name in children:
      node += field(1, 2, field(1, 0, node_id) + field(2, 2, name.encode()))
    for name, key in attributes:
      node += field(2, 2, field(1, 2, name.encode()) + field(3, 2, key.encode()))
    out += field(1, 2, node)
  return out


GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
KERNEL = "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
BIAS = "model/layer_with_weights-0/bias/.ATTRIBUTES/VARIABLE_VALUE"
COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


def base_graph() -> bytes:
  return object_graph(
    [
      ([(1, "model"), (2, "save_counter")], []),
      ([(3, "layer_with_weights-0")], []),
      ([], [("VARIABLE_VALUE", COUNTER)]),
      ([(4, "kernel"), (5, "bias")], []),
      ([], [("VARIABLE_VALUE", KERNEL)]),
      ([], [("VARIABLE_VALUE", BIAS)]),
    ]
  )


def write_checkpoint(
  prefix: pathlib.Path,
  *,
  graph: bytes | None = None,
  tensors: dict[str, tuple[int, tuple, bytes]] | None = None,
  extra: list[tuple[bytes, bytes]] | None = None,
  num_shards: int = 1,
  snappy: bool = False,
  block_size: int = 4096,
  entry_override: dict[str, bytes] | None = None,
  sort: bool = True,
) -> None:
  """A TF2 checkpoint: its object graph and float tensors (dtype, shape, bytes)."""
  if tensors is None:
    tensors = {
      KERNEL: (1, (3, 4), struct.pack("<12f", *[0.1 * i for i in range(12)])),
      BIAS: (1, (4,), struct.pack("<4f", 0.0, 0.5, -0.5, 1.0)),
      COUNTER: (9, (), struct.pack("<q", 1)),
    }
  data = bytearray()
  records = [(b"", header(num_shards))]
  items: list[tuple[str, bytes, int, tuple, int]] = []
  g = base_graph() if graph is None else graph
  payload, crc = string_tensor(g)
  items.append((GRAPH_KEY, payload, 7, (), crc))
  for key, (dtype, shape, raw) in tensors.items():
    items.append((key, raw, dtype, shape, mask(crc32c(raw))))
  for key, raw, dtype, shape, crc in items:
    value = entry(dtype, shape, 0, len(data), len(raw), crc)
    if entry_override and key in entry_override:
      value = entry_override[key]
    records.append((key.encode("utf-8"), value))
    data += raw
  records += extra or []
  if sort:
    records.sort(key=lambda r: r[0])
  prefix.parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(f"{prefix}.index").write_bytes(table(records, snappy=snappy, block_size=block_size))
  pathlib.Path(f"{prefix}.data-00000-of-{num_shards:05d}").write_bytes(bytes(data))


# ---------------------------------------------------------------------------
# The corpus.


def _checkpoint_cases(root: pathlib.Path) -> list[Case]:
  cases: list[Case] = []
  rng = random.Random(9)

  def new(name: str, ok: dict | None = None, target: str | None = None) -> pathlib.Path:
    d = root / name
    d.mkdir(parents=True)
    cases.append(Case(name, CKPT, target or str(d / "ckpt-1"), ok or {}))
    return d / "ckpt-1"

  # Damage in the data shard: reading names still works (inspect, diff, lint),
  # verify reports it (exit 1), remap copies bytes as they are.
  shard_ok = {"inspect": (0, 2), "read_inventory": (0, 2), "verify": (1, 2), "lint": (0, 1, 2),
              "diff": (0, 1, 2), "remap": (0, 2)}  # fmt: skip
  # Damage inside the object graph's bytes (CRC intact): verify checks
  # integrity only (exit 0 or 1); lint reads names only.
  graph_ok = {"verify": (0, 1, 2), "lint": (0, 1, 2)}
  good = root / "_good" / "ckpt-1"
  write_checkpoint(good)
  good_index = pathlib.Path(f"{good}.index").read_bytes()
  good_data = pathlib.Path(f"{good}.data-00000-of-00001").read_bytes()

  def with_index(name: str, index: bytes, data: bytes = good_data, ok=None) -> None:
    p = new(name, ok)
    pathlib.Path(f"{p}.index").write_bytes(index)
    pathlib.Path(f"{p}.data-00000-of-00001").write_bytes(data)

  # The valid checkpoint itself: every command succeeds (lint may find names).
  fine = {"*": (0, 1, 2), "inspect": (0,), "verify": (0,), "diff": (0,), "read_inventory": (0,),
          "lint": (0, 1), "remap": (0,)}  # fmt: skip
  p = new("valid_checkpoint", fine)
  write_checkpoint(p)

  # Index: truncated, bit-flipped, bad footer.
  for n in (1, 10, 47, 48, 49, len(good_index) // 2, len(good_index) - 1):
    with_index(f"index_truncated_{n}", good_index[:n])
  with_index("index_empty", b"")
  # The footer's padding, after its two block handles, is read by no one.
  footer_at = len(good_index) - 48
  meta_at, handles_end = _varint_at(good_index, footer_at)
  meta_size, handles_end = _varint_at(good_index, handles_end)
  for _ in range(2):
    _, handles_end = _varint_at(good_index, handles_end)
  # ... nor is the metaindex block (filters: TF writes none and reads none).
  meta_end = meta_at + meta_size + 5
  for i in range(24):
    b = bytearray(good_index)
    pos = rng.randrange(len(b))
    b[pos] ^= 1 << rng.randrange(8)
    harmless = handles_end <= pos < len(good_index) - 8 or meta_at <= pos < meta_end
    with_index(f"index_bitflip_{i}_at_{pos}", bytes(b), ok={"*": (0, 1, 2)} if harmless else None)
  for i in range(8):
    b = bytearray(good_index)
    start = rng.randrange(len(b) - 16)
    b[start : start + 16] = bytes(rng.randrange(256) for _ in range(16))
    with_index(f"index_garbled_{i}_at_{start}", bytes(b))
  magic = struct.pack("<Q", 0xDB4775248B80FB57)
  with_index("index_bad_magic", good_index[:-8] + b"\0" * 8)
  with_index("index_random_300_bytes", bytes(rng.randrange(256) for _ in range(300)))
  with_index("index_only_magic", b"\0" * 40 + magic)
  with_index("index_footer_endless_varint", good_index[:-48] + b"\xff" * 40 + magic)
  for name, handle in (
    ("index_handle_offset_2_62", varint(0) + varint(0) + varint(1 << 62) + varint(10)),
    ("index_handle_size_2_62", varint(0) + varint(0) + varint(0) + varint(1 << 62)),
    ("index_handle_2_64", varint(0) + varint(0) + b"\xff" * 9 + b"\x7f" + varint(1)),
    ("index_handle_size_0", varint(0) + varint(0) + varint(0) + varint(0)),
  ):
    with_index(name, good_index[:-48] + handle.ljust(40, b"\0") + magic)
  # Index: block handles in the index block pointing anywhere.
  for i, (off, size) in enumerate(((1 << 40, 10), (0, 1 << 40), (5, 3), (0, 0))):
    # A table whose one data-block handle is replaced.
    records = [(b"", header())]
    out = table(records)
    handle = varint(off) + varint(size)
    ibuf = varint(0) + varint(1) + varint(len(handle)) + b"~" + handle
    iblock = ibuf + struct.pack("<I", 0) + struct.pack("<I", 1)
    start = len(out) - 48
    trailer = b"\0" + struct.pack("<I", mask(crc32c(iblock + b"\0")))
    footer = (varint(0) + varint(0) + varint(start) + varint(len(iblock))).ljust(40, b"\0")
    with_index(f"index_block_handle_{i}", out[:-48] + iblock + trailer + footer + magic)
  # Snappy-compressed index: valid, then damaged.
  p = new("index_snappy_valid", fine)
  write_checkpoint(p, snappy=True)
  snap = pathlib.Path(f"{p}.index").read_bytes()
  b = bytearray(snap)
  b[3] ^= 0xFF
  b[6] ^= 0xFF
  with_index("index_snappy_corrupt", bytes(b))
  b = bytearray(snap)
  b[0:5] = b"\xff\xff\xff\xff\x0f"  # the block claims 4 GB uncompressed
  with_index("index_snappy_huge_claim", bytes(b))
  # The first data block's compression byte set to an unknown type.
  b = bytearray(good_index)
  # Uncompressed: the first block's trailer sits right after it; find it by the
  # handle in the index block (the footer's index handle, then its first entry).
  idx_off, pos = _varint_at(good_index, len(good_index) - 48)
  _, pos = _varint_at(good_index, pos)
  idx_off, pos = _varint_at(good_index, pos)
  e = idx_off
  _, e = _varint_at(good_index, e)  # shared
  nk, e = _varint_at(good_index, e)
  _, e = _varint_at(good_index, e)
  e += nk
  _, e = _varint_at(good_index, e)
  first_block_size, _ = _varint_at(good_index, e)
  b[first_block_size] = 7
  with_index("index_unknown_compression", bytes(b))

  # Index entries: each field out of range.
  def entries_case(name: str, override: dict[str, bytes] | None = None, **kw) -> None:
    p = new(name, kw.pop("ok", None))
    write_checkpoint(p, entry_override=override, **kw)

  data = struct.pack("<12f", *range(12))
  crc = mask(crc32c(data))
  base_kernel_off = len(string_tensor(base_graph())[0])

  def kernel(**kw) -> dict[str, bytes]:
    args = {"dtype": 1, "shape": (3, 4), "shard": 0, "offset": base_kernel_off, "size": 48}
    args["crc"] = crc
    args.update(kw)
    return {KERNEL: entry(**args)}

  entries_case("entry_dtype_0", kernel(dtype=0))
  entries_case("entry_dtype_9999", kernel(dtype=9999))
  entries_case("entry_dtype_2_64", kernel(dtype=(1 << 64) - 1))
  entries_case("entry_300_dims", kernel(shape=(2,) * 300))
  entries_case("entry_dims_2_62_x3", kernel(shape=(1 << 62,) * 3))
  entries_case("entry_200_huge_dims", kernel(shape=((1 << 63) - 1,) * 200))
  entries_case("entry_negative_dim", kernel(shape=(-5, 4)))
  entries_case("entry_shard_5_of_1", kernel(shard=5))
  entries_case("entry_shard_2_40", kernel(shard=1 << 40))
  entries_case("entry_offset_2_62", kernel(offset=1 << 62))
  entries_case("entry_size_2_62", kernel(size=1 << 62))
  entries_case("entry_offset_2_64", kernel(offset=(1 << 64) - 1))
  entries_case("entry_past_shard_end", kernel(offset=10_000), ok=shard_ok)
  entries_case(
    "entry_endless_varint_1mb",
    {KERNEL: b"\x08\x01\x12\x00\x20" + b"\xff" * (1 << 20) + b"\x01\x28\x30"},
  )
  entries_case(
    "entry_endless_dim_varint",
    {KERNEL: b"\x08\x01\x12" + varint(2 + 200_000) + b"\x12" + varint(200_000) + b"\x08"
     + b"\xff" * (200_000 - 1)},
  )  # fmt: skip
  entries_case("entry_group_wire_type", {KERNEL: b"\x08\x01\x0b\x0c"})
  entries_case("entry_runs_past_end", {KERNEL: b"\x08\x01\x12\x40"})
  entries_case("entry_empty_value", {KERNEL: b""}, ok={"*": (0, 1, 2)})
  graph_entry_ok = {**graph_ok, "verify": (1, 2)}
  entries_case("entry_graph_offset_2_62", {GRAPH_KEY: entry(7, (), 0, 1 << 62, 100, 0)})
  entries_case(
    "entry_graph_size_2_62", {GRAPH_KEY: entry(7, (), 0, 0, 1 << 62, 0)}, ok=graph_entry_ok
  )
  entries_case(
    "entry_graph_size_1gb", {GRAPH_KEY: entry(7, (), 0, 0, 1 << 30, 0)}, ok=graph_entry_ok
  )
  entries_case("header_num_shards_2_40", num_shards=1 << 40)
  entries_case("header_num_shards_0", num_shards=0)
  p = new("header_missing")  # a table without the bundle header entry
  write_checkpoint(p)
  records = [(GRAPH_KEY.encode(), entry(7, (), 0, 0, 10, 0))]
  pathlib.Path(f"{p}.index").write_bytes(table(records))
  p = new("keys_out_of_order")
  write_checkpoint(
    p, sort=False, extra=[(b"aaa/.ATTRIBUTES/VARIABLE_VALUE", entry(1, (), 0, 0, 4, 0))]
  )
  p = new("keys_duplicate")
  write_checkpoint(p, extra=[(KERNEL.encode(), entry(1, (3, 4), 0, 0, 48, 0))], sort=True)
  p = new("key_not_utf8")
  write_checkpoint(
    p, extra=[(b"model/\xff\xfe/.ATTRIBUTES/VARIABLE_VALUE", entry(1, (), 0, 0, 4, 0))]
  )
  p = new("key_70000_bytes")
  write_checkpoint(p, extra=[(b"z" * 70_000, entry(1, (), 0, 0, 4, 0))])
  # Names that are valid but hostile to printing and sorting.
  tensors_5000 = {
    KERNEL: (1, (3, 4), data),
    "model/layer-" + "9" * 5000 + "/.ATTRIBUTES/VARIABLE_VALUE": (1, (1,), b"\0" * 4),
    "model/layer-" + "8" * 5000 + "/.ATTRIBUTES/VARIABLE_VALUE": (1, (1,), b"\0" * 4),
    "model/x5/.ATTRIBUTES/VARIABLE_VALUE": (1, (1,), b"\0" * 4),
  }
  p = new("key_5000_digit_parts", {"*": (0, 1, 2)})
  write_checkpoint(p, tensors=tensors_5000)
  p = new("key_control_characters", {"*": (0, 1, 2)})
  write_checkpoint(
    p,
    tensors={
      "model/\x1b[2J\x1b]0;pwned\x07/.ATTRIBUTES/VARIABLE_VALUE": (1, (1,), b"\0" * 4),
      "model/\u202eevil/.ATTRIBUTES/VARIABLE_VALUE": (1, (1,), b"\0" * 4),
    },
  )
  p = new("many_top_level_names", {"*": (0, 1, 2)})
  write_checkpoint(
    p, tensors={f"n{i:05d}/.ATTRIBUTES/VARIABLE_VALUE": (1, (1,), b"\0" * 4) for i in range(3000)}
  )
  # A partitioned variable: the whole entry says `slices`; each slice has its
  # own key (a 0 byte, then the name and the slice, in TF's ordered code).
  p = new("sliced_variable", {"*": (0, 1, 2)})
  slice_proto = field(1, 2, field(1, 0, 0) + field(2, 0, 2)) + field(1, 2, b"")
  write_checkpoint(
    p,
    entry_override={KERNEL: entry(1, (3, 4), 0, 0, 0, 0, slices=slice_proto)},
    extra=[
      (
        b"\x00\x01model/layer_with_weights-0/kernel\x00\x01\x02\x80\x82",
        entry(1, (2, 4), 0, 0, 32, 0),
      )
    ],
  )

  # Object graphs (in the data shard).
  def graph_case(name: str, graph: bytes, ok=None) -> None:
    p = new(name, ok or graph_ok)
    write_checkpoint(p, graph=graph)

  summary_ok = {"inspect": (0, 2), "read_inventory": (0, 2), "lint": (0, 1, 2), "verify": (0, 1, 2),
                "diff": (0, 1, 2)}  # fmt: skip
  graph_case("graph_garbage", bytes(rng.randrange(256) for _ in range(200)))
  graph_case("graph_endless_node_varint_1mb", b"\x0a" + b"\xff" * (1 << 20))
  graph_case("graph_node_length_2_62", b"\x0a" + varint(1 << 62))
  graph_case("graph_unknown_group_field", b"\x0b\x0c")
  deep = [([(i + 1, "c")], []) for i in range(20_000)] + [([], [])]
  graph_case("graph_20000_deep", object_graph(deep), summary_ok)
  cyc = [([(1, "a")], []), ([(0, "back"), (1, "self")], [])]
  graph_case("graph_cycle", object_graph(cyc), {"*": (0, 1, 2)})
  graph_case("graph_child_out_of_range", object_graph([([(99, "x")], [])]), summary_ok)
  graph_case("graph_child_negative", object_graph([([(-1, "x")], [])]), summary_ok)
  graph_case("graph_huge_name_2mb", object_graph([([(0, "n" * (2 << 20))], [])]), {"*": (0, 1, 2)})
  graph_case("graph_empty", b"", {"*": (0, 1, 2)})
  graph_case("graph_not_utf8_name", b"\x0a\x07\x0a\x05\x12\x03\xff\xfe\xfd")
  p = new("graph_string_length_endless", {**graph_ok, "verify": (1, 2)})
  write_checkpoint(p)
  d = pathlib.Path(f"{p}.data-00000-of-00001")
  d.write_bytes(b"\xff" * 64 + d.read_bytes()[64:])
  p = new("graph_string_length_2_62", {**graph_ok, "verify": (1, 2)})
  write_checkpoint(p)
  d = pathlib.Path(f"{p}.data-00000-of-00001")
  d.write_bytes(varint(1 << 62) + d.read_bytes()[5:])

  # Data shards.
  p = new("shard_missing", shard_ok)
  write_checkpoint(p)
  os.unlink(f"{p}.data-00000-of-00001")
  for n in (0, 10, len(good_data) // 2, len(good_data) - 1):
    p = new(f"shard_truncated_{n}", shard_ok)
    write_checkpoint(p)
    d = pathlib.Path(f"{p}.data-00000-of-00001")
    d.write_bytes(d.read_bytes()[:n])
  p = new("shard_extra_bytes", {"*": (0, 1, 2)})
  write_checkpoint(p)
  with open(f"{p}.data-00000-of-00001", "ab") as f:
    f.write(b"\0" * 100)
  for i in range(4):
    p = new(f"shard_bitflip_{i}", shard_ok)
    write_checkpoint(p)
    d = pathlib.Path(f"{p}.data-00000-of-00001")
    b = bytearray(d.read_bytes())
    b[len(b) - 1 - i * 13] ^= 0x10
    d.write_bytes(bytes(b))
  p = new("shard_is_directory", shard_ok)
  write_checkpoint(p)
  os.unlink(f"{p}.data-00000-of-00001")
  os.mkdir(f"{p}.data-00000-of-00001")
  p = new("shard_is_fifo", shard_ok)
  write_checkpoint(p)
  os.unlink(f"{p}.data-00000-of-00001")
  os.mkfifo(f"{p}.data-00000-of-00001")
  p = new("shard_symlink_loop", shard_ok)
  write_checkpoint(p)
  os.unlink(f"{p}.data-00000-of-00001")
  os.symlink(f"{p}.data-00000-of-00001", f"{p}.data-00000-of-00001")
  p = new("shard_dangling_symlink", shard_ok)
  write_checkpoint(p)
  os.unlink(f"{p}.data-00000-of-00001")
  os.symlink(str(root / "nowhere"), f"{p}.data-00000-of-00001")
  p = new("index_is_fifo")
  os.mkfifo(f"{p}.index")
  p = new("index_is_directory")
  os.mkdir(f"{p}.index")
  p = new("index_symlink_loop")
  os.symlink(f"{p}.index", f"{p}.index")
  p = new("index_dangling_symlink")
  os.symlink(str(root / "nowhere"), f"{p}.index")

  # Paths: directories, state files, special files.
  def dir_case(name: str) -> pathlib.Path:
    d = root / name
    d.mkdir()
    cases.append(Case(name, CKPT, str(d)))
    return d

  dir_case("dir_empty")
  d = dir_case("dir_symlink_loop_entries")
  os.symlink(d / "a", d / "b")
  os.symlink(d / "b", d / "a")
  os.symlink(d, d / "self")
  d = dir_case("dir_two_checkpoints")
  write_checkpoint(d / "ckpt-1")
  write_checkpoint(d / "ckpt-2")
  d = dir_case("dir_long_digit_checkpoint_names")
  write_checkpoint(d / ("ckpt-" + "7" * 200))
  write_checkpoint(d / ("ckpt-" + "3" * 200))
  for name, text in (
    ("state_garbage", bytes(rng.randrange(256) for _ in range(500))),
    ("state_nul_path", b'model_checkpoint_path: "ckpt-1\x00x"\n'),
    ("state_missing_target", b'model_checkpoint_path: "ckpt-99"\n'),
    ("state_1mb_line", b'model_checkpoint_path: "' + b"a" * (2 << 20) + b'"\n'),
    ("state_absolute_elsewhere", b'model_checkpoint_path: "/nonexistent/dir/ckpt-1"\n'),
  ):
    d = dir_case(name)
    (d / "checkpoint").write_bytes(text)
  d = dir_case("state_is_fifo")
  os.mkfifo(d / "checkpoint")
  d = dir_case("state_is_directory")
  (d / "checkpoint").mkdir()
  fifo = root / "path_is_fifo"
  os.mkfifo(fifo)
  cases.append(Case("path_is_fifo", CKPT, str(fifo)))
  loop = root / "path_symlink_loop"
  os.symlink(loop, loop)
  cases.append(Case("path_symlink_loop", CKPT, str(loop)))
  dangling = root / "path_dangling"
  os.symlink(root / "nowhere", dangling)
  cases.append(Case("path_dangling_symlink", CKPT, str(dangling)))
  cases.append(Case("path_missing", CKPT, str(root / "missing" / "ckpt-1")))
  empty = root / "path_empty_file"
  empty.write_bytes(b"")
  cases.append(Case("path_empty_file", CKPT, str(empty)))
  return cases


def _varint_at(buf: bytes, pos: int) -> tuple[int, int]:
  result = shift = 0
  while True:
    b = buf[pos]
    pos += 1
    result |= (b & 0x7F) << shift
    if not b & 0x80:
      return result, pos
    shift += 7


def _keras3_h5(path: pathlib.Path, mutate=None) -> None:
  import h5py
  import numpy as np

  with h5py.File(path, "w") as f:
    g = f.create_group("layers/dense/vars")
    g.create_dataset("0", data=np.ones((3, 4), "f4"))
    g.create_dataset("1", data=np.zeros((4,), "f4"))
    f.create_group("optimizer/vars").create_dataset("0", data=np.array(3, "i8"))
    f.create_group("vars")
    if mutate:
      mutate(f)


def _keras2_h5(path: pathlib.Path, mutate=None, libver=None) -> None:
  import h5py
  import numpy as np

  with h5py.File(path, "w", libver=libver or "earliest") as f:
    f.attrs["layer_names"] = np.array([b"dense"])
    g = f.create_group("dense")
    g.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
    g.create_dataset("dense/kernel:0", data=np.ones((3, 4), "f4"))
    g.create_dataset("dense/bias:0", data=np.zeros((4,), "f4"))
    if mutate:
      mutate(f)


def _hdf5_cases(root: pathlib.Path) -> list[Case]:
  import h5py
  import numpy as np

  cases: list[Case] = []
  fine = {"*": (0, 1, 2), "inspect": (0,), "read_inventory": (0,)}

  def new(name: str, writer=_keras3_h5, mutate=None, ok=None, suffix=".weights.h5") -> pathlib.Path:
    d = root / name
    d.mkdir()
    p = d / f"model{suffix}"
    writer(p, mutate)
    cases.append(Case(name, CKPT, str(p), ok or {}))
    return p

  new("h5_keras3_valid", ok=fine)
  new("h5_keras2_valid", _keras2_h5, ok=fine, suffix=".h5")

  def hard_cycle(f):
    f["layers/dense/vars/loop"] = f["layers"]

  new("h5_hard_link_cycle", mutate=hard_cycle, ok={"*": (0, 1, 2)})

  def soft_cycle(f):
    f["layers/a"] = h5py.SoftLink("/layers/b")
    f["layers/b"] = h5py.SoftLink("/layers/a")
    f["layers/up"] = h5py.SoftLink("/")

  new("h5_soft_link_cycle", mutate=soft_cycle, ok={"*": (0, 1, 2)})

  other = root / "_other.h5"
  with h5py.File(other, "w") as f:
    f.create_dataset("secret", data=np.zeros(3))

  def external(f):
    f["layers/ext"] = h5py.ExternalLink(str(other), "/")

  new("h5_external_link", mutate=external)

  def external_passwd(f):
    f["vars/ext"] = h5py.ExternalLink("/etc/passwd", "/")

  new("h5_external_link_passwd", mutate=external_passwd)

  def external_layer(f):
    f["ext"] = h5py.ExternalLink(str(other), "/")
    f.attrs["layer_names"] = np.array([b"ext"])

  new("h5_keras2_layer_is_external_link", _keras2_h5, mutate=external_layer, suffix=".h5")

  def deep(f):
    g = f["layers"]
    for _ in range(100):
      g = g.create_group("d")

  new("h5_100_deep_groups", mutate=deep)

  def big_attr(f):
    f.attrs["layer_names"] = np.array([b"x" * 8] * 200_000)

  def keras2_latest(p, mutate):
    _keras2_h5(p, mutate, libver="latest")

  new(
    "h5_keras2_big_layer_names", keras2_latest, mutate=big_attr, suffix=".h5", ok={"*": (0, 1, 2)}
  )

  def int_attr(f):
    f.attrs["layer_names"] = np.arange(10)

  new("h5_keras2_int_layer_names", _keras2_h5, mutate=int_attr, suffix=".h5", ok={"*": (0, 1, 2)})

  def bad_utf8(f):
    f["dense"].attrs["weight_names"] = np.array([b"\xff\xfe"])

  new("h5_keras2_weight_names_not_utf8", _keras2_h5, mutate=bad_utf8, suffix=".h5")

  def missing_layer(f):
    f.attrs["layer_names"] = np.array([b"dense", b"nope", b"../x", b""])

  new("h5_keras2_layer_missing", _keras2_h5, mutate=missing_layer, suffix=".h5",
      ok={"*": (0, 1, 2)})  # fmt: skip

  def huge_shape(f):
    f["layers"].create_dataset("huge", shape=(1 << 40,) * 3, dtype="f4")

  new("h5_dataset_2_120_elements", mutate=huge_shape)

  def null_shape(f):
    f["layers"].create_dataset("null", data=h5py.Empty("f4"))

  new("h5_null_dataspace", mutate=null_shape, ok={"*": (0, 1, 2)})

  def vlen(f):
    f["layers"].create_dataset("s", data=np.array([b"a", b"bc"], dtype=object),
                               dtype=h5py.string_dtype())  # fmt: skip

  new("h5_string_dataset", mutate=vlen, ok={"*": (0, 1, 2)})
  new("h5_not_keras", mutate=lambda f: [f.__delitem__(k) for k in list(f)])

  # Found by benchmarks/fuzz.py: metadata that makes the HDF5 library allocate
  # (and touch) tens of gigabytes while listing a group. Stored in
  # tests/data/hostile/ (10 kB), read directly and inside a .keras archive.
  found = (
    pathlib.Path(__file__).resolve().parent / "hostile" / "h5_heap_claims_gigabytes.weights.h5"
  )
  for name, make in (
    ("h5_fuzz_heap_claims_gigabytes", lambda p: p.write_bytes(found.read_bytes())),
    (
      "keras_fuzz_heap_claims_gigabytes",
      lambda p: p.write_bytes(_zip_bytes({"model.weights.h5": found.read_bytes()})),
    ),
  ):
    d = root / name
    d.mkdir()
    target = d / ("model.keras" if name.startswith("keras") else "model.weights.h5")
    make(target)
    cases.append(Case(name, CKPT, str(target)))

  valid = root / "h5_keras3_valid" / "model.weights.h5"
  raw = valid.read_bytes()
  rng = random.Random(5)
  for n in (8, 100, 800, len(raw) // 2, len(raw) - 1):
    d = root / f"h5_truncated_{n}"
    d.mkdir()
    (d / "model.weights.h5").write_bytes(raw[:n])
    cases.append(Case(d.name, CKPT, str(d / "model.weights.h5")))
  for i in range(12):
    b = bytearray(raw)
    pos = rng.randrange(8, min(len(b), 4096))
    b[pos] ^= 1 << rng.randrange(8)
    d = root / f"h5_bitflip_{i}_at_{pos}"
    d.mkdir()
    (d / "model.weights.h5").write_bytes(bytes(b))
    cases.append(Case(d.name, CKPT, str(d / "model.weights.h5"), {"*": (0, 1, 2)}))
  return cases


def _zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", compression) as z:
    for name, data in members.items():
      z.writestr(name, data)
  return buf.getvalue()


def _patch_member(raw: bytes, name: str, **fields_) -> bytes:
  """Rewrites fields of a member's local and central headers: method, flags,
  size (uncompressed), csize."""
  b = bytearray(raw)
  n = name.encode()
  for sig, method_at, flags_at, csize_at, size_at, name_at in (
    (b"PK\x03\x04", 8, 6, 18, 22, 30),
    (b"PK\x01\x02", 10, 8, 20, 24, 46),
  ):
    start = 0
    while True:
      i = b.find(sig, start)
      if i < 0:
        break
      start = i + 4
      if bytes(b[i + name_at : i + name_at + len(n)]) != n:
        continue
      if "method" in fields_:
        struct.pack_into("<H", b, i + method_at, fields_["method"])
      if "flags" in fields_:
        struct.pack_into("<H", b, i + flags_at, fields_["flags"])
      if "size" in fields_:
        struct.pack_into("<I", b, i + size_at, fields_["size"])
      if "csize" in fields_:
        struct.pack_into("<I", b, i + csize_at, fields_["csize"])
  return bytes(b)


def _keras_archive_cases(root: pathlib.Path) -> list[Case]:
  cases: list[Case] = []
  d = root / "_keras_src"
  d.mkdir()
  _keras3_h5(d / "w.h5")
  weights = (d / "w.h5").read_bytes()
  meta = {"metadata.json": b'{"keras_version": "3.0.0"}', "config.json": b"{}"}
  fine = {"*": (0, 1, 2), "inspect": (0,), "read_inventory": (0,)}

  def new(name: str, raw: bytes, ok=None) -> None:
    p = root / name
    p.mkdir()
    (p / "model.keras").write_bytes(raw)
    cases.append(Case(name, CKPT, str(p / "model.keras"), ok or {}))

  stored = _zip_bytes({**meta, "model.weights.h5": weights})
  deflated = _zip_bytes({**meta, "model.weights.h5": weights}, zipfile.ZIP_DEFLATED)
  lzma_ = _zip_bytes({**meta, "model.weights.h5": weights}, zipfile.ZIP_LZMA)
  bz = _zip_bytes({**meta, "model.weights.h5": weights}, zipfile.ZIP_BZIP2)
  new("keras_valid_stored", stored, fine)
  new("keras_valid_deflated", deflated, fine)
  new("keras_valid_lzma", lzma_, fine)
  new("keras_encrypted_flag", _patch_member(stored, "model.weights.h5", flags=1))
  new("keras_unknown_method_99", _patch_member(stored, "model.weights.h5", method=99))
  new("keras_method_implode_6", _patch_member(stored, "model.weights.h5", method=6))

  def damage_member(raw: bytes) -> bytes:
    i = raw.find(b"PK\x03\x04", raw.find(b"model.weights.h5") - 40)
    name_len, extra_len = struct.unpack_from("<HH", raw, i + 26)
    start = i + 30 + name_len + extra_len
    b = bytearray(raw)
    for k in range(start + 20, start + 60):
      b[k] ^= 0x5A
    return bytes(b)

  new("keras_corrupt_deflate", damage_member(deflated))
  new("keras_corrupt_lzma", damage_member(lzma_))
  new("keras_corrupt_bzip2", damage_member(bz))
  # Bombs: 65 MB of zeros in 65 kB (beyond the expansion limit), and the same
  # member declaring 4 GB (beyond the size limit; a real 8 GB member takes zip64
  # and 8 MB on disk, refused the same way).
  bomb = io.BytesIO()
  with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("model.weights.h5", "w", force_zip64=True) as m:
      chunk = b"\0" * (1 << 20)
      for _ in range(65):
        m.write(chunk)
  bomb_raw = bomb.getvalue()
  new("keras_bomb_65mb_of_zeros", bomb_raw)
  # The same member declaring 4 GB (the largest size without zip64).
  new("keras_bomb_declares_4gb", _patch_member(bomb_raw, "model.weights.h5", size=0xFFFFFFF0))
  new("keras_declared_small_inflates_big", _patch_member(deflated, "model.weights.h5", size=100))
  new("keras_csize_past_end", _patch_member(stored, "model.weights.h5", csize=0x7FFFFFFF))
  new("keras_stored_size_mismatch", _patch_member(stored, "model.weights.h5", size=10))
  new("keras_no_weights_member", _zip_bytes(meta))
  new("keras_path_traversal_member", _zip_bytes({"../../etc/passwd": b"x", **meta}))
  new("keras_weights_not_hdf5", _zip_bytes({**meta, "model.weights.h5": b"hello" * 100}))
  new("keras_empty_zip", _zip_bytes({}))
  for n in (4, 30, len(stored) // 2, len(stored) - 10):
    new(f"keras_truncated_{n}", stored[:n])
  b = bytearray(stored)
  eocd = b.rfind(b"PK\x05\x06")
  struct.pack_into("<I", b, eocd + 16, 0x7FFFFFF0)
  new("keras_central_directory_offset_bogus", bytes(b))
  b = bytearray(stored)
  struct.pack_into("<H", b, eocd + 10, 0xFFFF)
  new("keras_entry_count_65535", bytes(b), {"*": (0, 1, 2)})  # zipfile reads the directory
  return cases


def _user_file_cases(root: pathlib.Path) -> list[Case]:
  """Rules TOML, report JSON and pipeline.config: user files, read by the
  "userfiles" helper's code."""
  cases: list[Case] = []
  d = root / "_user"
  d.mkdir()

  def new(kind: str, name: str, content: bytes | None, make=None) -> None:
    p = d / name
    if make is not None:
      make(p)
    else:
      p.write_bytes(content)
    cases.append(Case(f"{kind}_{name}", kind, str(p)))

  for kind, ext in ((RULES, "toml"), (REPORT, "json"), (CONFIG, "config")):
    new(kind, f"not_utf8.{ext}", b"\xff\xfe\x00garbage\x80\x81")
    new(kind, f"directory.{ext}", None, make=lambda p: p.mkdir())
    new(kind, f"fifo.{ext}", None, make=os.mkfifo)
    new(kind, f"dangling.{ext}", None, make=lambda p: os.symlink(root / "nowhere", p))
    if kind != RULES:  # an empty rules file is a valid one (no rules)
      new(kind, f"empty.{ext}", b"")
    new(kind, f"binary.{ext}", bytes(random.Random(kind).randrange(256) for _ in range(4000)))
  new(RULES, "extends_int.toml", b"extends = 1\n")
  new(RULES, "max_depth_str.toml", b'max_depth = "x"\n')
  new(RULES, "nested_lists.toml", b"forbid = [[1, [2]], {a = 1}]\nrequire = [[[]]]\n")
  new(RULES, "unterminated_charset.toml", b'forbid = ["[a-"]\ncharset = "[abc"\n')
  new(RULES, "catastrophic_regex.toml", b'forbid = ["(a+)+$", "(x|x)*y", "^(\\\\w+\\\\s?)*$"]\n')
  new(RULES, "extends_self.toml", b'extends = "extends_self.toml"\n')
  new(RULES, "huge_toml.toml", b"forbid = [" + b'"a",' * 300_000 + b"]\n")
  new(RULES, "deep_tables.toml", b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n")
  new(REPORT, "list.json", b"[]")
  new(REPORT, "string.json", b'"x"')
  new(REPORT, "renames_int.json", b'{"renames": 5, "proposed_renames": 5}')
  new(
    REPORT,
    "wrong_types.json",
    b'{"findings": [{"code": 1, "detail": {"a": []}}], "rename_map": [1]}',
  )
  new(REPORT, "deep_nesting.json", b"[" * 100_000 + b"]" * 100_000)
  new(REPORT, "huge_number.json", b'{"renames": 1' + b"0" * 10_000 + b"}")
  new(CONFIG, "huge_string.config", b'model { ssd { num_classes: 1 } }\ntrain_config { fine_tune_checkpoint: "'
      + b"a" * (8 << 20) + b'" }\n')  # fmt: skip
  new(CONFIG, "deep_nesting.config", b"model { " * 3000 + b"}" * 3000)
  new(CONFIG, "unterminated.config", b'model { ssd { num_classes: "')
  new(CONFIG, "num_classes_huge.config", b"model { ssd { num_classes: 1" + b"0" * 5000 + b" } }")
  return cases


def build(root: str | os.PathLike) -> list[Case]:
  """Writes the whole corpus below `root`; returns its cases."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  out = []
  for part, make in (
    ("ckpt", _checkpoint_cases),
    ("hdf5", _hdf5_cases),
    ("zip", _keras_archive_cases),
    ("user", _user_file_cases),
  ):
    (root / part).mkdir()
    out += make(root / part)
  names = [c.name for c in out]
  assert len(names) == len(set(names)), "case names must be unique"
  return out


def good_checkpoint(root: str | os.PathLike) -> str:
  """A valid checkpoint beside the corpus (the other side of `diff`, the SRC of
  `remap --from-report`)."""
  p = pathlib.Path(root) / "_reference" / "ckpt-1"
  if not pathlib.Path(f"{p}.index").exists():
    write_checkpoint(p)
  return str(p)


if __name__ == "__main__":
  for c in build(sys.argv[1]):
    print(c.kind, c.name, c.target)
