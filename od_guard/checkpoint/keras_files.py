"""Metadata of Keras weight files: Keras 3 ``.weights.h5`` / ``.keras`` and
Keras 2 HDF5 (``save_weights('x.h5')`` and whole-model ``.h5``).

Only dataset headers (shape, dtype) and Keras 2's `layer_names` /
`weight_names` attributes are read through h5py; values are never loaded, and
nothing is unpickled. A ``.keras`` archive is a zip whose
``model.weights.h5`` member is read in place.
"""

from __future__ import annotations

from collections.abc import Iterable
import contextlib
import dataclasses
import io
import lzma
import os
import struct
import tempfile
from typing import Any, NamedTuple
import zipfile
import zlib

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import kinds
from od_guard.checkpoint import limits
from od_guard.checkpoint import paths as checkpoint_path

_KERAS3_ROOTS = ("layers", "vars", "optimizer")


class Record(NamedTuple):
  """One saved value: its dataset path, kind (`kinds`), shape and dtype."""

  key: str
  kind: str
  shape: tuple[int, ...]
  dtype: str


@dataclasses.dataclass(frozen=True)
class Contents:
  """What a Keras weights file holds, from its metadata.

  Attributes:
    format: kinds.KERAS3_WEIGHTS or kinds.KERAS2_HDF5.
    records: every dataset, in the order h5py lists them.
    weight_order: for KERAS2_HDF5, the dataset keys in the order tf-keras
      loads them (layers in `layer_names` order, weights in `weight_names`
      order); () for KERAS3_WEIGHTS.
  """

  format: str
  records: tuple[Record, ...]
  weight_order: tuple[str, ...] = ()


def _dtype_name(dtype) -> str:
  name = str(dtype)
  return "string" if name.startswith(("object", "|S", "<U", "|O")) else name


def _kind(key: str, shape: tuple[int, ...], dtype: str) -> str:
  root = key.split("/", 1)[0]
  if root in ("optimizer", "optimizer_weights"):
    name = key.rsplit("/", 1)[-1].split(":", 1)[0]
    if name.startswith("iteration"):
      return kinds.BOOKKEEPING
    return kinds.optimizer_kind(name, shape, dtype)
  return kinds.MODEL


def _beyond(path: str, detail: str) -> errors.CorruptCheckpointError:
  return errors.CorruptCheckpointError(
    f"{path!r} is beyond od_guard's limits for Keras weights files: {detail}.",
    received=f"{path} ({_size_text(path)})",
    fix=(
      "No Keras version writes such a file: it is damaged or was crafted. Save the "
      "weights again with Keras `model.save_weights(...)`."
    ),
  )


def _size_text(path: str) -> str:
  try:
    return f"{fileio.getsize(path):,} bytes"
  except Exception:  # pylint: disable=broad-except  # only decorates a message
    return "size unknown"


def _datasets(h5file, path: str) -> list[tuple[str, object]]:
  """Every dataset below the root, walked iteratively, each group once.

  Hard links are followed (a group reached twice, as in a link cycle, is
  walked once); soft links are not (Keras writes none); an external link,
  which would open another file, is refused.
  """
  import h5py

  out = []
  seen = {h5file.id}
  count = 0

  def names(group) -> list[str]:
    nonlocal count
    listed = []
    for name in group:
      count += 1
      if count > limits.MAX_HDF5_OBJECTS:
        raise _beyond(path, f"more than {limits.MAX_HDF5_OBJECTS:,} groups and datasets")
      listed.append(name)
    return listed

  stack = [(iter(names(h5file)), h5file, "", 0)]
  while stack:
    it, group, prefix, depth = stack[-1]
    name = next(it, None)
    if name is None:
      stack.pop()
      continue
    link = group.get(name, getlink=True)
    key = f"{prefix}{name}"
    if isinstance(link, h5py.ExternalLink):
      raise errors.CorruptCheckpointError(
        f"{path!r} links to another file ({limits.printable(key)!r} -> "
        f"{limits.printable(str(link.filename))!r}), which Keras never writes; od_guard "
        "does not follow it.",
        received=f"{path} ({_size_text(path)})",
        fix="Save the weights again with Keras, or pass the file the link names.",
      )
    if not isinstance(link, h5py.HardLink):
      continue  # a soft link: the object it names is reached by its hard link
    obj = group.get(name, getlink=False)
    if isinstance(obj, h5py.Dataset):
      out.append((key, obj))
    elif isinstance(obj, h5py.Group) and obj.id not in seen:
      if depth + 1 > limits.MAX_HDF5_DEPTH:
        raise _beyond(path, f"groups nested more than {limits.MAX_HDF5_DEPTH} deep")
      seen.add(obj.id)
      stack.append((iter(names(obj)), obj, key + "/", depth + 1))
  return out


def _attribute(obj, name: str, path: str) -> list:
  """A (small) string-list attribute, its size checked before it is read."""
  if name not in obj.attrs:
    return []
  attr_id = obj.attrs.get_id(name)
  size = attr_id.dtype.itemsize
  for d in attr_id.shape or ():
    size *= d
  if size > limits.MAX_HDF5_ATTRIBUTE_BYTES:
    raise _beyond(
      path,
      f"an attribute {name!r} of {size:,} bytes (the limit is {limits.MAX_HDF5_ATTRIBUTE_BYTES:,})",
    )
  import h5py
  import numpy as np

  value = obj.attrs[name]
  if isinstance(value, h5py.Empty):
    return []
  items = np.asarray(value, dtype=object).ravel().tolist()
  return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in items]


def _weight_order(h5file, path: str) -> tuple[str, ...]:
  """The order tf-keras loads a Keras 2 HDF5 file in: layers in `layer_names`
  order, weights in `weight_names` order. A listed layer without its group
  adds nothing (reading the inventory does not fail on it; loading would)."""
  import h5py

  root = h5file.get("model_weights", h5file)
  prefix = "model_weights/" if "model_weights" in h5file else ""
  order = []
  present = set(root)  # bounded: the walk counted these
  weights: dict[str, list[str]] = {}  # per layer name: a name listed again costs nothing
  for layer in _attribute(root, "layer_names", path):
    names = weights.get(layer)
    if names is None:
      # Every link the walk reached is checked (no external one), so resolving
      # a name here opens no other file.
      group = root.get(layer) if layer.split("/", 1)[0] in present else None
      names = weights[layer] = (
        _attribute(group, "weight_names", path) if isinstance(group, h5py.Group) else []
      )
    order.extend(f"{prefix}{layer}/{weight}" for weight in names)
  return tuple(order)


def _contents(h5file, path: str) -> Contents:
  import h5py

  # The walk comes first: it refuses external links before any name is
  # resolved (resolving one would open the file it names).
  datasets = _datasets(h5file, path)
  if "layer_names" in h5file.attrs or (
    "model_weights" in h5file
    and isinstance(h5file.get("model_weights"), h5py.Group)
    and "layer_names" in h5file["model_weights"].attrs
  ):
    fmt = kinds.KERAS2_HDF5
  elif any(r in h5file for r in _KERAS3_ROOTS):
    fmt = kinds.KERAS3_WEIGHTS
  else:
    shown = ", ".join(limits.printable(k) for k in list(h5file.keys())[:8]) or "no groups"
    raise errors.NotACheckpointError(
      f"{path!r} is an HDF5 file, but not Keras weights.",
      received=f"{path} (top-level groups: {shown}; no 'layer_names' attribute, no "
      "'layers'/'vars' groups)",
      fix=(
        "Pass a file written by Keras `model.save_weights(...)` or `model.save(...)`"
        " (.weights.h5, .keras or Keras 2 .h5), or a TF checkpoint."
      ),
    )
  records = []
  for key, ds in datasets:
    shape = tuple(int(d) for d in (ds.shape or ()))
    problem = limits.check_shape(shape)
    if problem:
      raise _beyond(path, f"the dataset {limits.printable(key)!r} has {problem}")
    dtype = _dtype_name(ds.dtype)
    records.append(Record(key, _kind(key, shape, dtype), shape, dtype))
  order = _weight_order(h5file, path) if fmt == kinds.KERAS2_HDF5 else ()
  return Contents(format=fmt, records=tuple(records), weight_order=order)


class _Window(io.RawIOBase):
  """A read-only, seekable view of bytes [start, start + size) of a file: a
  stored (uncompressed) zip member, read in place."""

  def __init__(self, f, start: int, size: int):
    super().__init__()
    self._f, self._start, self._size, self._pos = f, start, size, 0

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  def tell(self) -> int:
    return self._pos

  def seek(self, offset: int, whence: int = 0) -> int:
    base = (0, self._pos, self._size)[whence]
    self._pos = max(0, base + offset)
    return self._pos

  def readinto(self, buf) -> int:
    n = max(0, min(len(buf), self._size - self._pos))
    if not n:
      return 0
    self._f.seek(self._start + self._pos)
    data = self._f.read(n)
    buf[: len(data)] = data
    self._pos += len(data)
    return len(data)


_SUPPORTED_COMPRESSION = {
  zipfile.ZIP_STORED: "stored",
  zipfile.ZIP_DEFLATED: "deflate",
  zipfile.ZIP_BZIP2: "bzip2",
  zipfile.ZIP_LZMA: "lzma",
}
_MEMBER = "model.weights.h5"


def _member(f, archive: zipfile.ZipFile, path: str, archive_size: int, stack):
  """A seekable file of the archive's weights member, within the limits."""
  info = archive.getinfo(_MEMBER)
  if info.flag_bits & 0x1:
    raise errors.CorruptCheckpointError(
      f"The weights in {path!r} are encrypted; Keras never encrypts them.",
      received=f"{path} (member {_MEMBER}, encrypted)",
      fix="Pass the archive Keras wrote, or decrypt it and zip it again without a password.",
    )
  method = _SUPPORTED_COMPRESSION.get(info.compress_type)
  if method is None:
    raise errors.CorruptCheckpointError(
      f"The weights in {path!r} use zip compression method {info.compress_type}, which "
      "od_guard does not read (Keras stores them uncompressed).",
      received=f"{path} (member {_MEMBER}, method {info.compress_type})",
      fix="Save the model again with Keras `model.save('x.keras')`.",
    )
  if info.compress_size > archive_size or info.header_offset + 30 > archive_size:
    raise errors.CorruptCheckpointError(
      f"The weights member of {path!r} lies past the end of the archive (truncated?).",
      received=f"{path} ({archive_size:,} bytes; member {info.compress_size:,} bytes)",
      fix="Copy the .keras file again from its source.",
    )
  if method == "stored":
    f.seek(info.header_offset)
    local = f.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
      raise zipfile.BadZipFile("the weights member's local header is damaged")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if info.file_size != info.compress_size or start + info.file_size > archive_size:
      raise zipfile.BadZipFile("the stored weights member runs past the end of the archive")
    return _Window(f, start, info.file_size)
  if info.file_size > limits.MAX_ZIP_MEMBER_BYTES or (
    info.file_size > (64 << 20) and info.file_size > limits.MAX_ZIP_EXPANSION * info.compress_size
  ):
    raise errors.CorruptCheckpointError(
      f"The compressed weights member of {path!r} declares {info.file_size:,} bytes from "
      f"{info.compress_size:,} on disk: beyond od_guard's limits for a compressed member "
      f"({limits.MAX_ZIP_MEMBER_BYTES:,} bytes, {limits.MAX_ZIP_EXPANSION}x expansion).",
      received=f"{path} ({archive_size:,} bytes)",
      fix=(
        "Keras stores the weights uncompressed: save the model again with Keras, or "
        "extract model.weights.h5 and pass it directly."
      ),
    )
  # Compressed: decompressed once into a temporary file (h5py seeks back and
  # forth, which a compressed stream would redo from its start), at most the
  # declared size (zipfile stops there and checks the CRC).
  out = stack.enter_context(tempfile.TemporaryFile(prefix="od_guard-"))  # noqa: SIM115
  with archive.open(info) as member:
    while True:
      chunk = member.read(1 << 20)
      if not chunk:
        break
      out.write(chunk)
  out.seek(0)
  return out


def read(path: str, container: str) -> Contents:
  """Reads the saved values' metadata of a Keras weights file.

  Args:
    path: the file.
    container: checkpoint_path.KERAS_H5 or checkpoint_path.KERAS_ARCHIVE.

  Returns:
    The file's format, saved values and (Keras 2 HDF5) weight order.

  Raises:
    NotACheckpointError: an HDF5 file without Keras layout, or a zip that is
      not a Keras archive.
    CorruptCheckpointError: the file is truncated, damaged, or beyond the
      limits (`limits`).
  """
  with _opened(path, container) as h5file:
    return _contents(h5file, path)


def read_values(path: str, container: str, keys: Iterable[str]) -> dict[str, Any]:
  """Reads the values (numpy arrays) of the datasets `keys` of a Keras weights
  file; for a ``.keras`` archive through its weights member, as `read` does
  (the zip's CRC checked for a compressed member), never h5py on the zip.

  Raises:
    NotACheckpointError, CorruptCheckpointError: as `read`; a key the file
      does not hold is a CorruptCheckpointError.
  """
  with _opened(path, container) as h5file:
    return {key: h5file[key][()] for key in keys}


def layer_groups(path: str, container: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
  """A Keras 2 HDF5 file's layers as Keras 2's `load_weights(by_name=True)`
  reads them: (layer name, its dataset keys in `weight_names` order), in
  `layer_names` order; layers without weights are left out.

  Raises:
    NotACheckpointError, CorruptCheckpointError: as `read`.
  """
  import h5py

  with _opened(path, container) as h5file:
    root = h5file.get("model_weights", h5file)
    prefix = "model_weights/" if "model_weights" in h5file else ""
    out = []
    for layer in _attribute(root, "layer_names", path):
      group = root.get(layer)
      names = _attribute(group, "weight_names", path) if isinstance(group, h5py.Group) else []
      if names:
        out.append((layer, tuple(f"{prefix}{layer}/{n}" for n in names)))
    return tuple(out)


@contextlib.contextmanager
def _opened(path: str, container: str):
  """The file's HDF5 root (a ``.keras`` archive's weights member), open; any
  failure to read it becomes a typed od_guard error."""
  import h5py

  try:
    with contextlib.ExitStack() as stack:
      f = stack.enter_context(fileio.open_binary(path))
      # Entered after the file is open and before HDF5 reads it (see limits);
      # not for remote files, whose reads run on fsspec's own I/O thread.
      if not fileio.is_remote(path):
        stack.enter_context(limits.bounded_address_space(limits.HDF5_ADDRESS_SPACE))
      if container == checkpoint_path.KERAS_ARCHIVE:
        f.seek(0, os.SEEK_END)
        archive_size = f.tell()
        f.seek(0)
        archive = stack.enter_context(zipfile.ZipFile(f))
        if _MEMBER not in archive.namelist():
          shown = ", ".join(limits.printable(n) for n in archive.namelist()[:6])
          raise errors.NotACheckpointError(
            f"{path!r} is a zip archive, but not a Keras '.keras' file.",
            received=f"{path} (members: {shown})",
            fix="Pass a file written by Keras 3 `model.save('x.keras')`.",
          )
        member = _member(f, archive, path, archive_size, stack)
        h5file = stack.enter_context(h5py.File(member, "r"))
      else:
        h5file = stack.enter_context(h5py.File(f, "r"))
      yield h5file
  except errors.OdGuardError:
    raise
  except (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    RuntimeError,
    NotImplementedError,
    OverflowError,
    UnicodeDecodeError,
    struct.error,
    RecursionError,
    MemoryError,
  ) as e:
    detail = limits.printable(str(e)[:300]) or type(e).__name__
    raise errors.CorruptCheckpointError(
      f"{path!r} cannot be read as a Keras weights file: {detail}.",
      received=f"{path} ({_size_text(path)})",
      fix="The file is probably truncated or damaged: save or copy it again.",
    ) from e
