"""The byte encodings TensorFlow's checkpoint files share, without TensorFlow.

Protobuf's wire format (varints, field tags, length-delimited values), read and
written by hand for the few small messages a checkpoint holds, and CRC32C with
the masking that LevelDB tables, tensor bundles and TFRecord / event files apply.
Used by the index reader (`tensor_bundle`), its writer (`bundle_writer`), the
object-graph summary (`object_graph`), `verify` and the event-file writer.
"""

from __future__ import annotations

from collections.abc import Iterator

from od_guard.checkpoint import limits

_CRC_TABLE: list[int] = []
for _i in range(256):
  _c = _i
  for _ in range(8):
    _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
  _CRC_TABLE.append(_c)


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


def encode_varint(n: int) -> bytes:
  """The protobuf varint of `n` (a negative int64 as its two's complement)."""
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


def length_delimited(tag: int, payload: bytes) -> bytes:
  """A length-delimited field: its 1-byte `tag`, the varint length, then `payload`."""
  return bytes([tag]) + encode_varint(len(payload)) + payload
