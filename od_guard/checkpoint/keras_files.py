"""Metadata of Keras weight files: Keras 3 ``.weights.h5`` / ``.keras`` and
Keras 2 HDF5 (``save_weights('x.h5')`` and whole-model ``.h5``).

Only dataset headers (shape, dtype) are read through h5py; values are never
loaded, and nothing is unpickled. A ``.keras`` archive is a zip whose
``model.weights.h5`` member is read in place.
"""

from __future__ import annotations

import zipfile

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import paths as checkpoint_path

# (key, kind, shape, dtype) per saved value.
Record = tuple[str, str, tuple[int, ...], str]

_KERAS3_ROOTS = ("layers", "vars", "optimizer")


def _dtype_name(dtype) -> str:
  name = str(dtype)
  return "string" if name.startswith(("object", "|S", "<U", "|O")) else name


def _kind(key: str, shape: tuple[int, ...], dtype: str) -> str:
  from od_guard.checkpoint import inventory  # Kinds live with the inventory.

  root = key.split("/", 1)[0]
  if root in ("optimizer", "optimizer_weights"):
    name = key.rsplit("/", 1)[-1].split(":", 1)[0]
    if name.startswith("iteration"):
      return inventory.BOOKKEEPING
    return inventory._optimizer_kind(name, shape, dtype)  # pylint: disable=protected-access
  return inventory.MODEL


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


def _records(h5file, path: str) -> tuple[str, list[Record]]:
  from od_guard.checkpoint import inventory

  attrs = h5file.attrs
  if "layer_names" in attrs or (
    "model_weights" in h5file and "layer_names" in h5file["model_weights"].attrs
  ):
    fmt = inventory.KERAS2_HDF5
    roots = [h5file]
  elif any(r in h5file for r in _KERAS3_ROOTS):
    fmt = inventory.KERAS3_WEIGHTS
    roots = [h5file]
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
  records: list[Record] = []
  for root in roots:
    for key, ds in _datasets(root):
      shape = tuple(int(d) for d in ds.shape)
      dtype = _dtype_name(ds.dtype)
      records.append((key, _kind(key, shape, dtype), shape, dtype))
  return fmt, records


def read(path: str, container: str) -> tuple[str, list[Record]]:
  """Reads the saved values' metadata of a Keras weights file.

  Args:
    path: the file.
    container: checkpoint_path.KERAS_H5 or checkpoint_path.KERAS_ARCHIVE.

  Returns:
    (format, records), format being KERAS3_WEIGHTS or KERAS2_HDF5.

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
              return _records(h5file, path)
      with h5py.File(f, "r") as h5file:
        return _records(h5file, path)
  except errors.OdGuardError:
    raise
  except (OSError, zipfile.BadZipFile, KeyError, ValueError) as e:
    raise errors.CorruptCheckpointError(
      f"{path!r} cannot be read as a Keras weights file: {e}.",
      received=f"{path} ({fileio.getsize(path):,} bytes)",
      fix="The file is probably truncated: save or copy it again.",
    ) from e


def weight_order(path: str) -> list[str]:
  """Dataset keys of a Keras 2 HDF5 weights file in the order tf-keras loads
  them: layers in `layer_names` order, weights in `weight_names` order."""
  import h5py

  def decode(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)

  with fileio.open_binary(path) as f, h5py.File(f, "r") as h5file:
    root = h5file.get("model_weights", h5file)
    prefix = "model_weights/" if "model_weights" in h5file else ""
    out = []
    for layer in map(decode, root.attrs.get("layer_names", [])):
      for weight in map(decode, root[layer].attrs.get("weight_names", [])):
        out.append(f"{prefix}{layer}/{weight}")
    return out
