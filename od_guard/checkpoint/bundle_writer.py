"""Writes a tensor bundle copied from another: names changed, bytes unchanged.

`copy_bundle` is what `od-guard remap` writes with: every tensor's bytes are
copied (in the kernel where the platform can) with their stored CRCs, under new
keys; a few scalar strings (the object graph) are re-encoded; the index is a
fresh LevelDB table (`_TableBuilder`). No TensorFlow.

Crash safety (see `safe_output`): both files are written to temporary files
created exclusively in the destination's directory
(``.od_guard-remap-<pid>-<random>.{data,index}.tmp``), fsynced, and checked;
then a journal ``<destination>.od_guard-journal`` naming the renames is
published (the commit point), the old index is removed, the data then the index
are renamed into place, an old checkpoint's other data shards are removed, and
the journal is deleted. Killed before the journal exists, the destination is
untouched (the temporary files are leftovers the next run removes); after, the
next run rolls the change forward. SIGINT / SIGTERM during the copy remove the
temporary files; during the renames they wait until the renames are done.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import BinaryIO

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import journal
from od_guard.checkpoint import limits
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import proto_wire
from od_guard.checkpoint import safe_output
from od_guard.checkpoint import tensor_bundle

# Short names: the table builder encodes three varints per entry.
_varint = proto_wire.encode_varint
_field = proto_wire.length_delimited
_DTYPE_ENUMS = {name: number for number, name in tensor_bundle.DTYPE_NAMES.items()}

_BLOCK_SIZE = 4096
_RESTART_INTERVAL = 16
_COPY_CHUNK = 16 << 20
# copy_file_range errors after which a plain read/write copy may succeed.
_NO_COPY_FILE_RANGE = frozenset(
  getattr(errno, n)
  for n in ("EXDEV", "ENOSYS", "EINVAL", "EOPNOTSUPP", "ENOTSUP", "EBADF")
  if hasattr(errno, n)
)


def _encode_entry(dtype: str, shape: tuple[int, ...], offset: int, size: int, crc: int) -> bytes:
  out = bytearray(b"\x08" + _varint(_DTYPE_ENUMS[dtype]))
  dims = b"".join(_field(0x12, (b"\x08" + _varint(d)) if d else b"") for d in shape)
  out += _field(0x12, dims)
  if offset:
    out += b"\x20" + _varint(offset)
  if size:
    out += b"\x28" + _varint(size)
  if crc:
    out += b"\x35" + struct.pack("<I", crc)
  return bytes(out)


def _encode_header(num_shards: int) -> bytes:
  return b"\x08" + _varint(num_shards) + _field(0x1A, b"\x08\x01")  # version.producer = 1


def encode_string_scalar(value: bytes) -> tuple[bytes, int]:
  """A scalar DT_STRING tensor as TF stores it, and its entry's (masked) CRC:
  varint length, masked CRC of the length (as uint32), then the bytes."""
  length = (
    struct.pack("<I", len(value)) if len(value) <= 0xFFFFFFFF else struct.pack("<Q", len(value))
  )
  crc = proto_wire.crc32c(length)
  length_checksum = struct.pack("<I", proto_wire.mask_crc(crc))
  crc = proto_wire.crc32c(length_checksum, crc)
  crc = proto_wire.crc32c(value, crc)
  return _varint(len(value)) + length_checksum + value, proto_wire.mask_crc(crc)


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
    handle = _varint(len(self.out)) + _varint(len(contents))
    self.out += (
      contents
      + b"\x00"
      + struct.pack("<I", proto_wire.mask_crc(proto_wire.crc32c(contents + b"\x00")))
    )
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
      _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
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
      index_buf += _varint(0) + _varint(len(key)) + _varint(len(handle)) + key + handle
    index = self._emit_block(self._block_bytes(index_buf, restarts or [0]))
    footer = (meta + index).ljust(tensor_bundle.TABLE_FOOTER_SIZE - 8, b"\x00") + struct.pack(
      "<Q", tensor_bundle.TABLE_MAGIC
    )
    return bytes(self.out) + footer


def _ends_early(src, source: str, key: str, offset: int, size: int):
  """The data shard (not the index) is shorter than the index says."""
  path = getattr(src, "name", None)
  return tensor_bundle.damaged_shard_error(
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
  index: tensor_bundle.BundleIndex,
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
            tensor_bundle.shard_path(source, e.shard_id, index.header.num_shards)
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
  index: tensor_bundle.BundleIndex,
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

  Crash-safe and interruptible as the module docstring says: the temporary
  files are checked (`check`) before the journal, the commit point, is published.

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
    if d is not None and journal.journal_name(base) in d.committed:
      raise safe_output.DestinationError(
        f"Writing {destination!r} stopped after its commit point: {e.strerror or e}.",
        received=os.path.join(where, journal.journal_name(base)),
        fix="Run remap into that directory again once the cause is fixed: it completes the "
        "change from the journal (the source is untouched).",
      ) from e
    raise safe_output.write_error(e, where) from e


def _copy_into(
  d, guard, source, index, base, renames, replace, progress, progress_every, overwrite, check, keep
) -> None:
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
    final_data, final_index = tensor_bundle.shard_path(base, 0, 1), base + ".index"
    with guard.deferred():
      if not overwrite and (d.exists(final_index) or d.exists(final_data)):
        raise safe_output.DestinationError(
          "The destination checkpoint appeared while remap was writing it.",
          received=d.join(final_index),
          fix="Pass --overwrite to replace it, or choose another prefix.",
        )
      stale = checkpoint_path.data_shard_names(base)
      remove = []
      if overwrite:
        for name in d.listdir():
          st = d.lstat(name) if stale.match(name) and name != final_data else None
          if st is not None and (st.st_dev, st.st_ino) not in keep:
            remove.append(name)
      plan = journal.remap_plan(
        base,
        renames=[(data_name, final_data), (index_name, final_index)],
        clear=[final_index] if overwrite else [],
        remove=remove,
      )
      plan = journal.publish_journal(d, plan, token)
      committed = True
      journal.apply_plan(d, plan)
  finally:
    # Once the journal is published the change is committed: its files are
    # the next run's to complete, whatever happens here.
    if not committed and journal.journal_name(base) not in d.committed:
      for name in temps:
        d.unlink(name)
