"""Metadata of Keras weight files: Keras 3 ``.weights.h5`` / ``.keras`` and
Keras 2 HDF5 (``save_weights('x.h5')`` and whole-model ``.h5``).

Only dataset headers (shape, dtype) and Keras 2's `layer_names` /
`weight_names` attributes are read through h5py; values are never loaded, and
nothing is unpickled. A ``.keras`` archive is a zip whose
``model.weights.h5`` member is read in place.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple
import zipfile

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import kinds
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


def _datasets(group, prefix: str = "") -> list[tuple[str, object]]:
  import h5py

  out = []
  for name in group:
    obj = group.get(name, getlink=False)
    key = f"{prefix}{name}"
    if isinstance(obj, h5py.Dataset):
      out.append((key, obj))
    elif isinstance(obj, h5py.Group):
      out.extend(_datasets(obj, key + "/"))
  return out


def _weight_order(h5file) -> tuple[str, ...]:
  """The order tf-keras loads a Keras 2 HDF5 file in: layers in `layer_names`
  order, weights in `weight_names` order. A listed layer without its group
  adds nothing (reading the inventory does not fail on it; loading would)."""

  def decode(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)

  root = h5file.get("model_weights", h5file)
  prefix = "model_weights/" if "model_weights" in h5file else ""
  order = []
  for layer in map(decode, root.attrs.get("layer_names", [])):
    group = root.get(layer)
    names = group.attrs.get("weight_names", []) if group is not None else []
    order.extend(f"{prefix}{layer}/{weight}" for weight in map(decode, names))
  return tuple(order)


def _contents(h5file, path: str) -> Contents:
  if "layer_names" in h5file.attrs or (
    "model_weights" in h5file and "layer_names" in h5file["model_weights"].attrs
  ):
    fmt = kinds.KERAS2_HDF5
  elif any(r in h5file for r in _KERAS3_ROOTS):
    fmt = kinds.KERAS3_WEIGHTS
  else:
    top = ", ".join(list(h5file.keys())[:8]) or "no groups"
    raise errors.NotACheckpointError(
      f"{path!r} is an HDF5 file, but not Keras weights.",
      received=f"{path} (top-level groups: {top}; no 'layer_names' attribute, no "
      "'layers'/'vars' groups)",
      fix=(
        "Pass a file written by Keras `model.save_weights(...)` or `model.save(...)`"
        " (.weights.h5, .keras or Keras 2 .h5), or a TF checkpoint."
      ),
    )
  records = []
  for key, ds in _datasets(h5file):
    shape = tuple(int(d) for d in ds.shape)
    dtype = _dtype_name(ds.dtype)
    records.append(Record(key, _kind(key, shape, dtype), shape, dtype))
  order = _weight_order(h5file) if fmt == kinds.KERAS2_HDF5 else ()
  return Contents(format=fmt, records=tuple(records), weight_order=order)


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
    CorruptCheckpointError: the file is truncated or damaged.
  """
  import h5py

  try:
    with fileio.open_binary(path) as f:
      if container == checkpoint_path.KERAS_ARCHIVE:
        with zipfile.ZipFile(f) as archive:
          if "model.weights.h5" not in archive.namelist():
            raise errors.NotACheckpointError(
              f"{path!r} is a zip archive, but not a Keras '.keras' file.",
              received=f"{path} (members: {', '.join(archive.namelist()[:6])})",
              fix="Pass a file written by Keras 3 `model.save('x.keras')`.",
            )
          with archive.open("model.weights.h5") as member:
            with h5py.File(member, "r") as h5file:
              return _contents(h5file, path)
      with h5py.File(f, "r") as h5file:
        return _contents(h5file, path)
  except errors.OdGuardError:
    raise
  except (OSError, zipfile.BadZipFile, KeyError, ValueError) as e:
    raise errors.CorruptCheckpointError(
      f"{path!r} cannot be read as a Keras weights file: {e}.",
      received=f"{path} ({fileio.getsize(path):,} bytes)",
      fix="The file is probably truncated: save or copy it again.",
    ) from e
