"""Pure-Python reader for TensorFlow's tensor-bundle index (``<prefix>.index``).

The index of a TF checkpoint is a LevelDB-format sorted table. Its values are
``BundleEntryProto`` messages (one per saved tensor) plus, under the empty key,
a ``BundleHeaderProto``. Reading it needs no TensorFlow: this module decodes the
table and the two small protos by hand, so that listing a checkpoint costs
milliseconds instead of the seconds TensorFlow takes to import.

Only metadata is read. Tensor values are never touched, except for the one
string tensor that holds the object graph (see `read_string_scalar`).
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import errno
import os
import re
import struct
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import limits

if TYPE_CHECKING:  # imported by the writer when it runs
  from od_guard.checkpoint import safe_output

_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
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


def _corrupt(path: str, detail: str) -> errors.CorruptCheckpointError:
  return errors.CorruptCheckpointError(
    f"The checkpoint index {path!r} is damaged: {detail}.",
    received=f"{path} ({_size_text(path)})",
    fix=(
      "Copy the checkpoint again from its source (an interrupted copy or "
      "download leaves a truncated index), or point at another checkpoint."
    ),
  )


def _corrupt_shard(path: str, detail: str) -> errors.CorruptCheckpointError:
  return errors.CorruptCheckpointError(
    f"The data shard {path!r} is damaged: {detail}.",
    received=f"{path} ({_size_text(path)})",
    fix=(
      "Copy the checkpoint's data shard again from its source (the index is "
      "intact; the shard beside it is not)."
    ),
  )


def _size_text(path: str) -> str:
  try:
    return f"{fileio.getsize(path):,} bytes"
  except Exception:  # pylint: disable=broad-except  # only decorates a message
    return "size unknown"


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
  """Decodes the protobuf varint at `pos` of `buf`.

  Returns:
    (value, position after it).

  Raises:
    IndexError: `buf` ends inside the varint.
    ValueError: the varint is longer than 10 bytes or its value does not fit
      in 64 bits.
  """
  b = buf[pos]
  if b < 0x80:
    return b, pos + 1
  result = b & 0x7F
  shift = 7
  pos += 1
  while True:
    b = buf[pos]
    pos += 1
    result |= (b & 0x7F) << shift
    if not b & 0x80:
      if result >> 64:
        raise ValueError("a varint's value does not fit in 64 bits")
      return result, pos
    shift += 7
    if shift >= 7 * limits.MAX_VARINT_BYTES:
      raise ValueError(f"a varint is longer than {limits.MAX_VARINT_BYTES} bytes")


def skip_field(buf: bytes, pos: int, wire: int) -> int:
  """Skips the value of a protobuf field of wire type `wire` starting at `pos`.

  Returns:
    The position after the value.

  Raises:
    ValueError: a group wire type (3, 4) or an unknown one.
  """
  if wire == 0:
    return decode_varint(buf, pos)[1]
  if wire == 2:
    n, pos = decode_varint(buf, pos)
    return pos + n
  if wire == 5:
    return pos + 4
  if wire == 1:
    return pos + 8
  raise ValueError(f"unsupported wire type {wire}")


def fields(buf: bytes, pos: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
  """Yields (field number, wire type, value, position after it) of a
  serialized protobuf. For a length-delimited field, value is its start and
  the next position is its end."""
  end = len(buf) if end is None else end
  while pos < end:
    tag, pos = decode_varint(buf, pos)
    field, wire = tag >> 3, tag & 7
    if wire == 0:
      value, pos = decode_varint(buf, pos)
    elif wire == 2:
      n, pos = decode_varint(buf, pos)
      value = pos
      pos += n
      if pos > end:
        raise ValueError("length-delimited field runs past the end")
    else:
      value = pos
      pos = skip_field(buf, pos, wire)
    yield field, wire, value, pos


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
  if file_size < _FOOTER_SIZE:
    raise _corrupt(
      path,
      f"it has {file_size} bytes, fewer than the {_FOOTER_SIZE}-byte footer every index ends with",
    )
  f.seek(file_size - _FOOTER_SIZE)
  footer = f.read(_FOOTER_SIZE)
  (magic,) = struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)
  if magic != _MAGIC:
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
    raise _corrupt_shard(
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
    raise _corrupt_shard(path, f"it ends inside the string tensor {key!r}")
  try:
    length, pos = decode_varint(raw, 0)
  except (IndexError, ValueError) as e:
    raise _corrupt_shard(path, f"the string tensor {key!r} is unreadable") from e
  pos += 4  # masked CRC32C of the length varints.
  value = raw[pos : pos + length]
  if len(value) != length:
    raise _corrupt_shard(path, f"the string tensor {key!r} is truncated")
  return value


# ---------------------------------------------------------------------------
# Writing: a tensor bundle copied from another, names changed, bytes unchanged.

_DTYPE_ENUMS = {name: number for number, name in DTYPE_NAMES.items()}
_CRC_TABLE: list[int] = []
for _i in range(256):
  _c = _i
  for _ in range(8):
    _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
  _CRC_TABLE.append(_c)
_BLOCK_SIZE = 4096
_RESTART_INTERVAL = 16
_COPY_CHUNK = 16 << 20
# copy_file_range errors after which a plain read/write copy may succeed.
_NO_COPY_FILE_RANGE = frozenset(
  getattr(errno, n)
  for n in ("EXDEV", "ENOSYS", "EINVAL", "EOPNOTSUPP", "ENOTSUP", "EBADF")
  if hasattr(errno, n)
)


def crc32c(data: bytes, crc: int = 0) -> int:
  """CRC32C (Castagnoli), extending `crc`. Pure Python: used for the object
  graph and the index blocks, never for tensor data (whose CRCs are copied)."""
  crc ^= 0xFFFFFFFF
  table = _CRC_TABLE
  for b in data:
    crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
  """TF's and LevelDB's masked CRC."""
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _put_varint(n: int) -> bytes:
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


def _field(tag: int, payload: bytes) -> bytes:
  return bytes([tag]) + _put_varint(len(payload)) + payload


def _encode_entry(dtype: str, shape: tuple[int, ...], offset: int, size: int, crc: int) -> bytes:
  out = bytearray(b"\x08" + _put_varint(_DTYPE_ENUMS[dtype]))
  dims = b"".join(_field(0x12, (b"\x08" + _put_varint(d)) if d else b"") for d in shape)
  out += _field(0x12, dims)
  if offset:
    out += b"\x20" + _put_varint(offset)
  if size:
    out += b"\x28" + _put_varint(size)
  if crc:
    out += b"\x35" + struct.pack("<I", crc)
  return bytes(out)


def _encode_header(num_shards: int) -> bytes:
  return b"\x08" + _put_varint(num_shards) + _field(0x1A, b"\x08\x01")  # version.producer = 1


def encode_string_scalar(value: bytes) -> tuple[bytes, int]:
  """A scalar DT_STRING tensor as TF stores it, and its entry's (masked) CRC:
  varint length, masked CRC of the length (as uint32), then the bytes."""
  length = (
    struct.pack("<I", len(value)) if len(value) <= 0xFFFFFFFF else struct.pack("<Q", len(value))
  )
  crc = crc32c(length)
  length_checksum = struct.pack("<I", mask_crc(crc))
  crc = crc32c(length_checksum, crc)
  crc = crc32c(value, crc)
  return _put_varint(len(value)) + length_checksum + value, mask_crc(crc)


class _TableBuilder:
  """A LevelDB-format sorted table (what TF's index files are), uncompressed."""

  def __init__(self):
    self.out = bytearray()
    self.index: list[tuple[bytes, bytes]] = []
    self._block = bytearray()
    self._restarts = [0]
    self._counter = 0
    self._last = b""
    self._last_in_block = None

  def _emit_block(self, contents: bytes) -> bytes:
    handle = _put_varint(len(self.out)) + _put_varint(len(contents))
    self.out += contents + b"\x00" + struct.pack("<I", mask_crc(crc32c(contents + b"\x00")))
    return handle

  @staticmethod
  def _block_bytes(buf: bytearray, restarts: list[int]) -> bytes:
    return (
      bytes(buf)
      + b"".join(struct.pack("<I", r) for r in restarts)
      + struct.pack("<I", len(restarts))
    )

  def add(self, key: bytes, value: bytes) -> None:
    shared = 0
    if self._counter < _RESTART_INTERVAL:
      limit = min(len(self._last), len(key))
      while shared < limit and self._last[shared] == key[shared]:
        shared += 1
    else:
      self._restarts.append(len(self._block))
      self._counter = 0
    self._block += (
      _put_varint(shared)
      + _put_varint(len(key) - shared)
      + _put_varint(len(value))
      + key[shared:]
      + value
    )
    self._last = key
    self._last_in_block = key
    self._counter += 1
    if len(self._block) >= _BLOCK_SIZE:
      self._flush()

  def _flush(self) -> None:
    if self._last_in_block is None:
      return
    handle = self._emit_block(self._block_bytes(self._block, self._restarts))
    self.index.append((self._last_in_block, handle))
    self._block, self._restarts, self._counter = bytearray(), [0], 0
    self._last, self._last_in_block = b"", None

  def finish(self) -> bytes:
    self._flush()
    meta = self._emit_block(self._block_bytes(bytearray(), [0]))
    index_buf, restarts = bytearray(), []
    for key, handle in self.index:  # restart interval 1 in index blocks
      restarts.append(len(index_buf))
      index_buf += _put_varint(0) + _put_varint(len(key)) + _put_varint(len(handle)) + key + handle
    index = self._emit_block(self._block_bytes(index_buf, restarts or [0]))
    footer = (meta + index).ljust(_FOOTER_SIZE - 8, b"\x00") + struct.pack("<Q", _MAGIC)
    return bytes(self.out) + footer


def _ends_early(src, source: str, key: str, offset: int, size: int):
  """The data shard (not the index) is shorter than the index says."""
  path = getattr(src, "name", None)
  return _corrupt_shard(
    path if isinstance(path, str) else source,
    f"the bytes of {limits.printable(key[:200])!r} (at {offset:,}..{offset + size:,}) end early",
  )


def _copy_range(
  src: BinaryIO, out: BinaryIO, offset: int, size: int, source: str, key: str
) -> None:
  """Copies size bytes at offset of src to the end of out: in the kernel
  (copy_file_range) where the platform can, else through a bounded buffer."""
  fast = hasattr(os, "copy_file_range") and hasattr(src, "fileno")
  if fast:
    out.flush()
    start = out.tell()
    try:
      src_fd, out_fd = src.fileno(), out.fileno()
      position, remaining = offset, size
      while remaining:
        n = os.copy_file_range(src_fd, out_fd, min(remaining, _COPY_CHUNK), position)
        if n == 0:
          raise _ends_early(src, source, key, offset, size)
        position += n
        remaining -= n
      out.seek(0, os.SEEK_END)
      return
    except OSError as e:  # e.g. EXDEV, ENOSYS: undo any partial copy, then fall back
      if e.errno not in _NO_COPY_FILE_RANGE:
        raise  # ENOSPC, EIO, EFBIG ...: a plain write would fail the same way
      out.seek(start)
      out.truncate()
  src.seek(offset)
  remaining = size
  while remaining:
    chunk = src.read(min(remaining, _COPY_CHUNK))
    if not chunk:
      raise _ends_early(src, source, key, offset, size)
    out.write(chunk)
    remaining -= len(chunk)


def _copy_data(
  source: str,
  index: BundleIndex,
  out: BinaryIO,
  renames: dict[str, str],
  replace: dict[str, bytes],
  progress,
  progress_every: int,
) -> list[tuple[bytes, bytes]]:
  """Writes every tensor of `source` to `out` in the order of its shards;
  returns the index records, (new key, encoded entry), of what it wrote."""
  records: list[tuple[bytes, bytes]] = []
  position = 0
  reported = 0
  ordered = sorted(index.entries, key=lambda e: (e.shard_id, e.offset))
  open_shards: dict[int, BinaryIO] = {}
  try:
    for n, e in enumerate(ordered, 1):
      if e.sliced:
        raise errors.UnsupportedCheckpointError(
          f"{e.key!r} is a partitioned (sliced) variable; remap copies whole tensors"
          " and does not rewrite slices. The checkpoint itself is not damaged.",
          received=source,
          fix=(
            "Rename with TensorFlow instead: build the model under the new names and "
            "call tf.compat.v1.train.init_from_checkpoint(SRC, {'OLD/': 'NEW/'}), which "
            "restores partitioned variables, then save; or save the variable unpartitioned."
          ),
        )
      new_key = renames.get(e.key, e.key)
      if e.key in replace:
        payload, crc = encode_string_scalar(replace[e.key])
        out.write(payload)
        size = len(payload)
      else:
        f = open_shards.get(e.shard_id)
        if f is None:
          f = open_shards[e.shard_id] = fileio.open_binary(
            shard_path(source, e.shard_id, index.header.num_shards)
          )
        _copy_range(f, out, e.offset, e.size, source, e.key)
        size, crc = e.size, e.crc32c
      records.append(
        (new_key.encode("utf-8"), _encode_entry(e.dtype, e.shape, position, size, crc))
      )
      position += size
      if progress and (position - reported >= progress_every or n == len(ordered)):
        reported = position
        progress(n, len(ordered))
  finally:
    for f in open_shards.values():
      f.close()
  return records


def _index_bytes(records: list[tuple[bytes, bytes]]) -> bytes:
  table = _TableBuilder()
  table.add(b"", _encode_header(1))
  for key, value in sorted(records):
    table.add(key, value)
  return table.finish()


def copy_bundle(
  source: str,
  index: BundleIndex,
  destination: str,
  renames: dict[str, str],
  replace: dict[str, bytes] | None = None,
  progress=None,
  progress_every: int = 256 << 20,
  *,
  overwrite: bool = True,
  check=None,
  directory: safe_output.Directory | None = None,
  keep: frozenset = frozenset(),
) -> None:
  """Writes `destination` (one data shard) from `source`: every tensor's bytes
  copied unchanged (with its CRC) under its new key; keys in `replace` (scalar
  strings, e.g. a rewritten object graph) re-encoded. Memory stays within one
  copy chunk.

  Crash safety (see `safe_output`): both files are written to temporary files
  created exclusively in the destination's directory
  (``.od_guard-remap-<pid>-<random>.{data,index}.tmp``), fsynced, and checked
  (`check`); then a journal ``<destination>.od_guard-journal`` naming the
  renames is published (the commit point), the old index is removed, the
  data then the index are renamed into place, an old checkpoint's other data
  shards are removed, and the journal is deleted. Killed before the journal
  exists, the destination is untouched (the temporary files are leftovers the
  next run removes); after, the next run rolls the change forward. SIGINT /
  SIGTERM during the copy remove the temporary files; during the renames they
  wait until the renames are done.

  Args:
    source: the checkpoint prefix to copy.
    index: its index (`read_index`).
    destination: the prefix to write.
    renames: new keys by old key; keys not in it keep their names.
    replace: new values of scalar string tensors, by old key.
    progress: called as progress(tensors written, tensors in all) after every
      `progress_every` bytes and at the end.
    progress_every: bytes between progress calls.
    overwrite: replace an existing destination (else refuse, even if it
      appears while copying).
    check: called as check(index path, data path) on the complete temporary
      files, before anything is renamed; raises to abandon the copy.
    directory: the destination's directory, already open.
    keep: (st_dev, st_ino) of files never to remove (the source's).

  Raises:
    CorruptCheckpointError: a tensor is partitioned, or its data ends early.
    DestinationError: the destination cannot be written (typed: read-only,
      no space, permission, taken by another run ...).
  """
  from od_guard.checkpoint import safe_output  # only writers pay for it

  base = os.path.basename(destination)
  where = os.path.dirname(os.path.abspath(destination)) or "."
  own = directory is None
  try:
    d = directory
    with safe_output.interruptible() as guard:
      d = directory if directory is not None else safe_output.Directory(where)
      try:
        _copy_into(
          d,
          guard,
          source,
          index,
          base,
          renames,
          replace or {},
          progress,
          progress_every,
          overwrite,
          check,
          keep,
        )
      finally:
        if own:
          d.close()
  except OSError as e:
    if d is not None and safe_output.journal_name(base) in d.committed:
      raise safe_output.DestinationError(
        f"Writing {destination!r} stopped after its commit point: {e.strerror or e}.",
        received=os.path.join(where, safe_output.journal_name(base)),
        fix="Run remap into that directory again once the cause is fixed: it completes the "
        "change from the journal (the source is untouched).",
      ) from e
    raise safe_output.write_error(e, where) from e


def _copy_into(
  d, guard, source, index, base, renames, replace, progress, progress_every, overwrite, check, keep
) -> None:
  from od_guard.checkpoint import safe_output

  token = safe_output.new_token()
  temps: list[str] = []
  committed = False
  try:
    data_name, data_fd = d.create_temp("remap", "data", token)
    temps.append(data_name)
    with os.fdopen(data_fd, "wb", closefd=False) as out:
      records = _copy_data(source, index, out, renames, replace, progress, progress_every)
      out.flush()
    os.fsync(data_fd)
    index_name, index_fd = d.create_temp("remap", "index", token)
    temps.append(index_name)
    safe_output.write_all(index_fd, _index_bytes(records))
    os.fsync(index_fd)
    if check is not None:
      check(d.join(index_name), d.join(data_name))
    mode = safe_output.default_file_mode()  # temporary files are 0600 until complete
    os.fchmod(data_fd, mode)
    os.fchmod(index_fd, mode)
    final_data, final_index = shard_path(base, 0, 1), base + ".index"
    with guard.deferred():
      if not overwrite and (d.exists(final_index) or d.exists(final_data)):
        raise safe_output.DestinationError(
          "The destination checkpoint appeared while remap was writing it.",
          received=d.join(final_index),
          fix="Pass --overwrite to replace it, or choose another prefix.",
        )
      stale = re.compile(re.escape(base) + r"\.data-\d{5}-of-\d{5}$")
      remove = []
      if overwrite:
        for name in d.listdir():
          st = d.lstat(name) if stale.match(name) and name != final_data else None
          if st is not None and (st.st_dev, st.st_ino) not in keep:
            remove.append(name)
      plan = {
        "kind": "remap",
        "renames": [[data_name, final_data], [index_name, final_index]],
        "clear": [final_index] if overwrite else [],
        "remove": remove,
      }
      plan = safe_output.publish_journal(d, base, plan, token)
      committed = True
      safe_output.apply_plan(d, plan)
  finally:
    # Once the journal is published the change is committed: its files are
    # the next run's to complete, whatever happens here.
    if not committed and safe_output.journal_name(base) not in d.committed:
      for name in temps:
        d.unlink(name)
