"""Pure-Python reader for TensorFlow's tensor-bundle index (``<prefix>.index``).

The index of a TF checkpoint is a LevelDB-format sorted table. Its values are
``BundleEntryProto`` messages (one per saved tensor) plus, under the empty key,
a ``BundleHeaderProto``. Reading it needs no TensorFlow: this module decodes the
table and the two small protos by hand (the wire format is `proto_wire`), so
that listing a checkpoint costs milliseconds instead of the seconds TensorFlow
takes to import. `bundle_writer` writes such a bundle.

Only metadata is read. Tensor values are never touched, except for the one
string tensor that holds the object graph (see `read_string_scalar`).
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import os
import struct
from typing import BinaryIO, NamedTuple

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import limits
from od_guard.checkpoint import proto_wire

# The wire helpers live in proto_wire; bound here for the decoders' loops and for
# the importers of tensor_bundle.decode_varint / skip_field / fields / mask_crc.
decode_varint = proto_wire.decode_varint
skip_field = proto_wire.skip_field
fields = proto_wire.fields
mask_crc = proto_wire.mask_crc

# The LevelDB table format of the index (bundle_writer writes it too).
TABLE_MAGIC = 0xDB4775248B80FB57
TABLE_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes masked CRC32C.
_NO_COMPRESSION = 0
_SNAPPY_COMPRESSION = 1


# tensorflow/core/framework/types.proto, DataType enum (the values that occur in
# checkpoints). Reference types (value + 100) are mapped to their base type.
DTYPE_NAMES: dict[int, str] = {
  1: "float32",
  2: "float64",
  3: "int32",
  4: "uint8",
  5: "int16",
  6: "int8",
  7: "string",
  8: "complex64",
  9: "int64",
  10: "bool",
  11: "qint8",
  12: "quint8",
  13: "qint32",
  14: "bfloat16",
  15: "qint16",
  16: "quint16",
  17: "uint16",
  18: "complex128",
  19: "float16",
  20: "resource",
  21: "variant",
  22: "uint32",
  23: "uint64",
  24: "float8_e5m2",
  25: "float8_e4m3fn",
  29: "int4",
  30: "uint4",
}
DTYPE_SIZES: dict[str, int] = {
  "float32": 4,
  "float64": 8,
  "int32": 4,
  "uint8": 1,
  "int16": 2,
  "int8": 1,
  "complex64": 8,
  "int64": 8,
  "bool": 1,
  "qint8": 1,
  "quint8": 1,
  "qint32": 4,
  "bfloat16": 2,
  "qint16": 2,
  "quint16": 2,
  "uint16": 2,
  "complex128": 16,
  "float16": 2,
  "uint32": 4,
  "uint64": 8,
  "float8_e5m2": 1,
  "float8_e4m3fn": 1,
}


class BundleEntry(NamedTuple):
  """One saved tensor, as the index describes it.

  A NamedTuple rather than a dataclass: indexes hold tens of thousands of
  entries and this record is built for each.

  Attributes:
    key: the checkpoint key (``tf.train.list_variables`` name).
    dtype: numpy-style dtype name, e.g. ``"float32"``.
    shape: the tensor's shape.
    shard_id: which ``.data-NNNNN-of-MMMMM`` file holds the bytes.
    offset: byte offset of the tensor in that shard.
    size: number of bytes the tensor takes in that shard.
    sliced: True for a partitioned variable (saved as slices).
    crc32c: the stored (masked) CRC32C of the tensor's bytes in the shard.
  """

  key: str
  dtype: str
  shape: tuple[int, ...]
  shard_id: int
  offset: int
  size: int
  sliced: bool = False
  crc32c: int = 0


@dataclasses.dataclass(frozen=True)
class BundleHeader:
  num_shards: int
  big_endian: bool
  version: int


@dataclasses.dataclass(frozen=True)
class BundleIndex:
  header: BundleHeader
  entries: tuple[BundleEntry, ...]


def _damaged(what: str, path: str, detail: str, fix: str) -> errors.CorruptCheckpointError:
  return errors.CorruptCheckpointError(
    f"The {what} {path!r} is damaged: {detail}.", received=f"{path} ({_size_text(path)})", fix=fix
  )


_INDEX_FIX = (
  "Copy the checkpoint again from its source (an interrupted copy or "
  "download leaves a truncated index), or point at another checkpoint."
)
_SHARD_FIX = (
  "Copy the checkpoint's data shard again from its source (the index is "
  "intact; the shard beside it is not)."
)


def _corrupt(path: str, detail: str) -> errors.CorruptCheckpointError:
  return _damaged("checkpoint index", path, detail, _INDEX_FIX)


def damaged_shard_error(path: str, detail: str) -> errors.CorruptCheckpointError:
  """The typed error for data shard `path` damaged as `detail` says (the index is intact)."""
  return _damaged("data shard", path, detail, _SHARD_FIX)


def _size_text(path: str) -> str:
  try:
    return f"{fileio.getsize(path):,} bytes"
  except Exception:  # pylint: disable=broad-except  # only decorates a message
    return "size unknown"


def _decode_shape(buf: bytes, pos: int, end: int) -> tuple[int, ...]:
  dims = []
  while pos < end:
    tag = buf[pos]
    pos += 1
    if tag == 0x12:  # repeated Dim dim = 2
      n = buf[pos]
      pos += 1
      if n & 0x80:
        n, pos = decode_varint(buf, pos - 1)
      stop = pos + n
      size = 0
      while pos < stop:
        t = buf[pos]
        pos += 1
        if t == 0x08:
          size = buf[pos]
          pos += 1
          if size & 0x80:
            size, pos = decode_varint(buf, pos - 1)
        else:
          pos = skip_field(buf, pos, t & 7)
      if size >= 1 << 63:  # int64 -1 for unknown dimensions.
        size -= 1 << 64
      dims.append(size)
      if len(dims) > limits.MAX_DIMS:
        break
    else:
      if tag & 0x80:
        tag, pos = decode_varint(buf, pos - 1)
      pos = skip_field(buf, pos, tag & 7)
  if pos > end:
    raise ValueError("a shape runs past the end of its entry")
  shape = tuple(dims)
  problem = limits.check_shape(shape)
  if problem:
    raise ValueError(f"an entry holds {problem}")
  return shape


def _dtype_name(d: int) -> str:
  """The name of DataType enum value `d` (reference types, d + 100, as their base)."""
  if d > 100:
    d -= 100
  name = DTYPE_NAMES.get(d)
  if name is not None:
    return name
  if not 0 < d < 100:  # 0 is DT_INVALID; real enum values are small
    raise ValueError(f"an entry has the invalid dtype enum value {d}")
  return f"dtype_{d}"


def _decode_entry(key: str, buf: bytes, pos: int, end: int) -> BundleEntry:
  """Decodes a BundleEntryProto (hand-rolled: its tags are single bytes)."""
  dtype = 0
  shape: tuple[int, ...] = ()
  shard_id = offset = size = crc = 0
  sliced = False
  while pos < end:
    tag = buf[pos]
    pos += 1
    if tag == 0x08:
      dtype, pos = decode_varint(buf, pos)
    elif tag == 0x12:
      n, pos = decode_varint(buf, pos)
      shape = _decode_shape(buf, pos, pos + n)
      pos += n
    elif tag == 0x18:
      shard_id, pos = decode_varint(buf, pos)
    elif tag == 0x20:
      offset, pos = decode_varint(buf, pos)
    elif tag == 0x28:
      size, pos = decode_varint(buf, pos)
    elif tag == 0x35:  # fixed32 crc32c
      crc = int.from_bytes(buf[pos : pos + 4], "little")
      pos += 4
    elif tag == 0x3A:  # repeated TensorSliceProto slices
      sliced = True
      n, pos = decode_varint(buf, pos)
      pos += n
    else:
      if tag & 0x80:
        tag, pos = decode_varint(buf, pos - 1)
      pos = skip_field(buf, pos, tag & 7)
  if pos != end:
    raise ValueError(f"the entry for {key!r} runs past its end")
  return BundleEntry(key, _dtype_name(dtype), shape, shard_id, offset, size, sliced, crc)


def _decode_entries(block: bytes, entries: list, cache: dict) -> BundleHeader | None:
  """Decodes every entry of a data block into `entries`; returns the header
  if the block holds it.

  The fast path covers the layout TF writes for an unsliced tensor, in field
  order: dtype (1 byte), shape, shard_id (optional), offset, size, crc32c,
  nothing after. The (dtype, shape) part repeats across entries with equal
  shapes, so it is decoded once per distinct byte string. Any other layout
  goes through the general decoder.
  """
  header = None
  append = entries.append
  # tuple.__new__ skips the NamedTuple's Python-level __new__: half the cost
  # of building a record, paid once per saved tensor.
  make = tuple.__new__
  entry_type = BundleEntry
  for key, pos, end in _block_entries(block):
    if not key:
      header = _decode_header(block[pos:end])
      continue
    if key[0] == 0:
      # The key of one slice of a partitioned variable (TF's EncodeTensorNameSlice
      # starts with a 0 byte): its bytes belong to the variable's own entry,
      # which says `sliced`.
      continue
    name = key.decode("utf-8")
    # dtype tag + 1-byte value, shape tag + 1-byte length.
    if (
      block[pos] == 0x08
      and block[pos + 2] == 0x12
      and block[pos + 3] < 0x80
      and block[pos + 1] < 0x80
    ):
      stop = pos + 4 + block[pos + 3]
      prefix = block[pos:stop]
      known = cache.get(prefix)
      if known is None:
        d = block[pos + 1]
        known = cache[prefix] = (_dtype_name(d), _decode_shape(block, pos + 4, stop))
      p = stop
      shard_id = 0
      if block[p] == 0x18:
        shard_id, p = decode_varint(block, p + 1)
      # offset (tag 0x20), then size (0x28): varints decoded inline, as this
      # runs once per saved tensor.
      offset_size = []
      for tag in (0x20, 0x28):
        if block[p] != tag:
          break
        b = block[p + 1]
        value = b & 0x7F
        p += 2
        shift = 7
        while b & 0x80:
          if shift > 63:  # more than 10 bytes: the general decoder says so
            break
          b = block[p]
          value |= (b & 0x7F) << shift
          shift += 7
          p += 1
        else:
          offset_size.append(value)
          continue
        break
      else:
        if block[p] == 0x35 and p + 5 == end:
          offset, size = offset_size
          crc = int.from_bytes(block[p + 1 : end], "little")
          append(make(entry_type, (name, *known, shard_id, offset, size, False, crc)))
          continue
    append(_decode_entry(name, block, pos, end))
  return header


def _decode_header(buf: bytes) -> BundleHeader:
  num_shards = 0
  big_endian = False
  version = 0
  for field, _, value, stop in fields(buf):
    if field == 1:
      num_shards = value
    elif field == 2:
      big_endian = value == 1
    elif field == 3:
      for f, _, v, _ in fields(buf, value, stop):
        if f == 1:
          version = v
  if num_shards > limits.MAX_SHARDS:
    raise ValueError(
      f"its header names {limits.count_text(num_shards)} data shards "
      f"(the limit is {limits.MAX_SHARDS:,})"
    )
  return BundleHeader(num_shards=num_shards, big_endian=big_endian, version=version)


def _crc32c_function():
  """google_crc32c's C CRC32C (where installed), to check every block's checksum
  as TensorFlow does; None without it (the pure-Python CRC would cost more than
  reading the index)."""
  try:
    import google_crc32c
  except ImportError:  # pragma: no cover  # a dependency of od_guard
    return None
  return google_crc32c.value


_crc32c_value = _crc32c_function()


def _read_block(f: BinaryIO, file_size: int, offset: int, size: int) -> bytes:
  if offset + size + _BLOCK_TRAILER_SIZE > file_size:
    raise ValueError(
      f"a block at bytes {limits.count_text(offset, 'd')}..{limits.count_text(offset + size, 'd')}"
      f" lies past the end of the {file_size}-byte file"
    )
  f.seek(offset)
  raw = f.read(size + _BLOCK_TRAILER_SIZE)
  if len(raw) != size + _BLOCK_TRAILER_SIZE:
    raise ValueError("the file ends inside a block (it shrank while being read?)")
  kind = raw[size]
  data = raw[:size]
  if _crc32c_value is not None:
    (stored,) = struct.unpack_from("<I", raw, size + 1)
    if mask_crc(_crc32c_value(raw[: size + 1])) != stored:
      # TensorFlow checks every block's CRC too (DataLoss: block checksum mismatch).
      raise ValueError(f"the block at byte {offset:,} does not match its checksum")
  if kind == _NO_COMPRESSION:
    return data
  if kind == _SNAPPY_COMPRESSION:
    import cramjam  # Imported here: only compressed blocks need it.

    # A raw snappy block starts with its uncompressed length: checked before
    # decompressing, so a block cannot claim gigabytes.
    length, _ = decode_varint(data, 0)
    if length > max(64 * size, 1 << 20):
      raise ValueError(
        f"a compressed block of {size:,} bytes claims {limits.count_text(length)} bytes"
      )
    return bytes(cramjam.snappy.decompress_raw(data))
  raise ValueError(f"unknown block compression type {kind}")


def _entries_end(block: bytes) -> int:
  """Where a table block's entries end: before its restart offsets and count."""
  (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
  limit = len(block) - 4 - 4 * num_restarts
  if limit < 0:
    raise ValueError("a block's restart array does not fit in the block")
  return limit


def _block_entries(block: bytes) -> Iterator[tuple[bytes, int, int]]:
  """Yields (key, value start, value end) of each entry of a table block."""
  if len(block) < 4:
    raise ValueError("a block is shorter than its restart count")
  limit = _entries_end(block)
  pos = 0
  key = b""
  while pos < limit:
    shared = block[pos]
    non_shared = block[pos + 1]
    value_len = block[pos + 2]
    if shared | non_shared | value_len < 0x80:  # the usual: three 1-byte varints
      pos += 3
    else:
      shared, pos = decode_varint(block, pos)
      non_shared, pos = decode_varint(block, pos)
      value_len, pos = decode_varint(block, pos)
    if shared > len(key) or pos + non_shared + value_len > limit:
      raise ValueError("a block entry runs past the end of its block")
    if shared + non_shared > limits.MAX_KEY_BYTES:
      raise ValueError(f"a key is longer than {limits.MAX_KEY_BYTES:,} bytes")
    key = key[:shared] + block[pos : pos + non_shared]
    pos += non_shared
    yield key, pos, pos + value_len
    pos += value_len


def _footer(f: BinaryIO, path: str) -> tuple[int, bytes]:
  """The file's size and its table footer, whose magic number is checked."""
  f.seek(0, os.SEEK_END)
  file_size = f.tell()
  if file_size == 0:
    raise errors.NotACheckpointError(
      f"The checkpoint index {path!r} is empty.",
      received=f"{path} (0 bytes)",
      fix=(
        "An empty index is left by a save that was interrupted or a copy "
        "that failed; copy or save the checkpoint again."
      ),
    )
  if file_size < TABLE_FOOTER_SIZE:
    raise _corrupt(
      path,
      f"it has {file_size} bytes, fewer than the {TABLE_FOOTER_SIZE}-byte footer every index ends with",
    )
  f.seek(file_size - TABLE_FOOTER_SIZE)
  footer = f.read(TABLE_FOOTER_SIZE)
  (magic,) = struct.unpack_from("<Q", footer, TABLE_FOOTER_SIZE - 8)
  if magic != TABLE_MAGIC:
    raise _corrupt(
      path,
      "it does not end with the table magic number "
      "(the file is truncated, or is not a checkpoint index)",
    )
  return file_size, footer


def _read_table(
  f: BinaryIO, file_size: int, footer: bytes
) -> tuple[BundleHeader | None, list[BundleEntry]]:
  """Decodes every data block that the footer's index block points at."""
  pos = 0
  _, pos = decode_varint(footer, pos)  # metaindex offset
  _, pos = decode_varint(footer, pos)  # metaindex size
  index_offset, pos = decode_varint(footer, pos)
  index_size, pos = decode_varint(footer, pos)
  index_block = _read_block(f, file_size, index_offset, index_size)
  header = None
  entries: list[BundleEntry] = []
  cache: dict = {}
  for _, start, _ in _block_entries(index_block):
    offset, p = decode_varint(index_block, start)
    size, _ = decode_varint(index_block, p)
    block = _read_block(f, file_size, offset, size)
    header = _decode_entries(block, entries, cache) or header
    if len(entries) > limits.MAX_ENTRIES:
      raise ValueError(f"it holds more than {limits.MAX_ENTRIES:,} entries")
  return header, entries


def _check_entries(entries: list[BundleEntry], header: BundleHeader) -> None:
  """Keys strictly increasing (as every sorted table's are); shard ids, offsets
  and sizes within the limits."""
  previous = ""
  num_shards = header.num_shards
  for key, _, _, shard_id, offset, size, sliced, _ in entries:
    if key <= previous:
      raise ValueError(
        f"its keys are out of order or repeated (at {limits.printable(key[:200])!r})"
      )
    previous = key
    if (shard_id >= num_shards and not sliced) or offset + size > limits.MAX_FILE_BYTES:
      raise ValueError(
        f"the entry for {limits.printable(key[:200])!r} places its bytes in shard "
        f"{limits.count_text(shard_id, 'd')} at bytes {limits.count_text(offset, 'd')}.."
        f"{limits.count_text(offset + size, 'd')}, outside the {num_shards} data shard(s)"
        " the header names"
        if shard_id >= num_shards
        else f"the entry for {limits.printable(key[:200])!r} has an offset or size beyond"
        f" {limits.MAX_FILE_BYTES:,} bytes"
      )


def read_index(path: str) -> BundleIndex:
  """Reads a tensor-bundle index file.

  Args:
    path: the ``<prefix>.index`` file.

  Returns:
    The header and every entry, in key order.

  Raises:
    CorruptCheckpointError: the file is truncated or not a LevelDB table of
      bundle entries.
    NotACheckpointError: the file is empty.
    UnreadableFileError: the file cannot be opened.
  """
  with fileio.open_binary(path) as f:
    file_size, footer = _footer(f, path)
    try:
      header, entries = _read_table(f, file_size, footer)
      if header is None:
        raise ValueError("it has no bundle header entry")
      _check_entries(entries, header)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError, OverflowError) as e:
      raise _corrupt(path, str(e) or type(e).__name__) from e
    except MemoryError as e:
      raise _corrupt(path, "a length in it asks for more memory than there is") from e
    except Exception as e:  # cramjam raises its own DecompressionError.
      if type(e).__name__ == "DecompressionError":
        raise _corrupt(path, f"a compressed block does not decompress ({e})") from e
      raise
  return BundleIndex(header=header, entries=tuple(entries))


def shard_path(prefix: str, shard_id: int, num_shards: int) -> str:
  """Returns the data-shard file name TensorFlow uses for a shard."""
  return f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}"


def read_string_scalar(prefix: str, entry: BundleEntry, num_shards: int) -> bytes:
  """Reads a scalar DT_STRING tensor (such as the object graph) from its shard.

  A string tensor is stored as the varint lengths of its elements, a 4-byte
  checksum of those lengths, then the bytes of the elements.

  Raises:
    CorruptCheckpointError: the shard is shorter than the index says.
  """
  path = shard_path(prefix, entry.shard_id, num_shards)
  key = limits.printable(entry.key)
  if entry.size > limits.MAX_OBJECT_GRAPH_BYTES:
    raise damaged_shard_error(
      path,
      f"the index says the string tensor {key!r} takes {limits.count_text(entry.size)} bytes"
      f" (the limit is {limits.MAX_OBJECT_GRAPH_BYTES:,})",
    )
  with fileio.open_binary(path) as f:
    f.seek(0, os.SEEK_END)
    shard_size = f.tell()
    if entry.offset + entry.size > shard_size:
      raise errors.CorruptCheckpointError(
        f"The data shard {path!r} is shorter than its index says.",
        received=(
          f"{path} ({shard_size:,} bytes); the index places {key!r} at bytes "
          f"{limits.count_text(entry.offset, 'd')}..{limits.count_text(entry.offset + entry.size, 'd')}"
        ),
        fix="Copy the checkpoint's data shard again from its source.",
      )
    f.seek(entry.offset)
    raw = f.read(entry.size)
  if len(raw) != entry.size:
    raise damaged_shard_error(path, f"it ends inside the string tensor {key!r}")
  try:
    length, pos = decode_varint(raw, 0)
  except (IndexError, ValueError) as e:
    raise damaged_shard_error(path, f"the string tensor {key!r} is unreadable") from e
  pos += 4  # masked CRC32C of the length varints.
  value = raw[pos : pos + length]
  if len(value) != length:
    raise damaged_shard_error(path, f"the string tensor {key!r} is truncated")
  return value


# ---------------------------------------------------------------------------
