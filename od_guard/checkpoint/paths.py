"""Turns whatever path a user gives into the checkpoint it names.

Users point at checkpoints in many ways: the prefix TensorFlow wants
(``.../ckpt-0``), one of its files (``ckpt-0.index``, ``ckpt-0.data-00000-of-00001``),
the directory holding it, a SavedModel directory, or a Keras weights file.
`resolve` accepts all of them and says, in `Resolved.notes`, what it did.
"""

from __future__ import annotations

import dataclasses
import re

from od_guard import errors
from od_guard.checkpoint import fileio

TF_CHECKPOINT = "tf_checkpoint"
KERAS_H5 = "keras_h5"
KERAS_ARCHIVE = "keras_archive"

# A data shard's name after its prefix, as TensorFlow writes it (tensor_bundle.shard_path):
# the one pattern that every reader, writer and remover of data shards matches.
DATA_SHARD_SUFFIX = r"\.data-\d{5}-of-\d{5}$"
_DATA_FILE = re.compile(r"^(?P<prefix>.+)" + DATA_SHARD_SUFFIX)
_CKPT_NUMBER = re.compile(r"-(\d+)$")
# The unrolled form keeps no backtracking state per character (a 1 MB line
# cost 139 MB with an alternation inside the star).
_STATE_PATH = re.compile(r'^model_checkpoint_path:\s*"(?P<path>[^"\\]*(?:\\.[^"\\]*)*)"', re.M)
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_PIPELINE_HINTS = ("model {", "train_config", "train_input_reader", "eval_config")


def data_shard_names(base: str) -> re.Pattern[str]:
  """Matches the names of the data shards of checkpoint prefix `base` (a name, no directory)."""
  return re.compile(re.escape(base) + DATA_SHARD_SUFFIX)


@dataclasses.dataclass(frozen=True)
class Resolved:
  """A resolved checkpoint location.

  Attributes:
    given: the path the user passed.
    path: the checkpoint prefix (TF checkpoints) or the file (Keras files).
    container: one of TF_CHECKPOINT, KERAS_H5, KERAS_ARCHIVE.
    saved_model: True when `given` was a SavedModel directory.
    notes: what resolution did, in words, for the report.
  """

  given: str
  path: str
  container: str
  saved_model: bool = False
  notes: tuple[str, ...] = ()


def _not_found(path: str, fix: str) -> errors.CheckpointNotFoundError:
  return errors.CheckpointNotFoundError(
    f"No checkpoint at {path!r}: the path does not exist.", received=path, fix=fix
  )


def _listdir(directory: str) -> list[str]:
  try:
    return fileio.listdir(directory)
  except OSError as e:
    raise fileio.unreadable(directory, e, "list the directory", "directory") from e


def _index_prefixes(directory: str) -> list[str]:
  return [
    n[: -len(".index")]
    for n in _listdir(directory)
    if n.endswith(".index") and len(n) > len(".index")
  ]


def _sort_key(prefix: str) -> tuple[int, str, str]:
  m = _CKPT_NUMBER.search(prefix)
  if not m:
    return (-1, "", prefix)
  digits = m.group(1).lstrip("0")  # numeric order without int(): names can be long
  return (len(digits), digits, prefix)


def state_file_path(state: str) -> str | None:
  """The model_checkpoint_path a checkpoint state file names (its first MB is
  read), or None when it names none.

  Raises:
    OdGuardError, OSError: the file cannot be read.
  """
  with fileio.open_binary(state) as f:
    text = f.read(1 << 20).decode("utf-8", errors="replace")
  m = _STATE_PATH.search(text)
  return m.group("path") if m else None


def _from_state_file(directory: str, notes: list[str]) -> str | None:
  state = fileio.join(directory, "checkpoint")
  if not fileio.exists(state) or fileio.isdir(state):
    return None
  named = state_file_path(state)
  if named is None:
    notes.append(f"the state file {state!r} names no model_checkpoint_path; ignored it")
    return None
  if not named or not named.isprintable() or len(named) > 4096:
    notes.append(f"the state file {state!r} names an impossible path; ignored it")
    return None
  absolute = named.startswith("/") or bool(re.match(r"^[A-Za-z]:[\\/]", named)) or "://" in named
  candidate = named if absolute else fileio.join(directory, named)
  if fileio.exists(candidate + ".index"):
    notes.append(f"read the state file {state!r}: latest checkpoint {named!r}")
    return candidate
  # State files keep absolute paths from the machine that wrote them; the
  # checkpoint usually sits beside the state file under the same name.
  local = fileio.join(directory, re.split(r"[\\/]", named)[-1])
  if fileio.exists(local + ".index"):
    notes.append(
      f"the state file {state!r} names {named!r}, which is not here "
      f"(written on another machine?); used {local!r} beside it"
    )
    return local
  notes.append(f"the state file {state!r} names {named!r}, which does not exist")
  return None


def _resolve_directory(path: str, notes: list[str]) -> Resolved:
  names = _listdir(path)
  if "saved_model.pb" in names or "saved_model.pbtxt" in names:
    prefix = fileio.join(path, "variables", "variables")
    if not fileio.exists(prefix + ".index"):
      raise errors.CheckpointNotFoundError(
        f"{path!r} is a SavedModel without variables.",
        received=f"{path} (no variables/variables.index)",
        fix="Export the SavedModel again, or point at the training checkpoint instead.",
      )
    notes.append(f"{path!r} is a SavedModel: read its variables {prefix!r}")
    return Resolved(
      given=path, path=prefix, container=TF_CHECKPOINT, saved_model=True, notes=tuple(notes)
    )
  prefix = _from_state_file(path, notes)
  if prefix is None:
    prefixes = sorted(_index_prefixes(path), key=_sort_key)
    if len(prefixes) == 1:
      prefix = fileio.join(path, prefixes[0])
      notes.append(f"{path!r} is a directory: used its only checkpoint {prefix!r}")
    elif len(prefixes) > 1:
      raise errors.CheckpointNotFoundError(
        f"{path!r} holds {len(prefixes)} checkpoints and no usable "
        "'checkpoint' state file, so which one is meant is ambiguous.",
        received=f"{path} ({', '.join(prefixes[:6])}{' ...' if len(prefixes) > 6 else ''})",
        fix=f"Pass one checkpoint prefix, e.g. {fileio.join(path, prefixes[-1])!r}.",
      )
    else:
      keras_files = [n for n in names if n.endswith((".weights.h5", ".keras"))]
      if len(keras_files) == 1:
        notes.append(f"{path!r} is a directory: used its only Keras file {keras_files[0]!r}")
        return _resolve_file(fileio.join(path, keras_files[0]), notes, given=path)
      if "variables" in names and fileio.exists(fileio.join(path, "variables", "variables.index")):
        prefix = fileio.join(path, "variables", "variables")
        notes.append(
          f"{path!r} holds a SavedModel's variables (saved_model.pb is missing): read {prefix!r}"
        )
        return Resolved(
          given=path, path=prefix, container=TF_CHECKPOINT, saved_model=True, notes=tuple(notes)
        )
      shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
      raise errors.CheckpointNotFoundError(
        f"The directory {path!r} holds no checkpoint.",
        received=f"{path} (contains: {shown or 'nothing'})",
        fix=(
          "Point at a directory with a 'checkpoint' state file or a "
          "'<prefix>.index' file, or at the checkpoint prefix itself "
          "(e.g. '.../checkpoint/ckpt-0')."
        ),
      )
  return Resolved(given=path, path=prefix, container=TF_CHECKPOINT, notes=tuple(notes))


def _resolve_file(path: str, notes: list[str], given: str | None = None) -> Resolved:
  given = given or path
  name = fileio.basename(path)
  if name.endswith(".index"):
    prefix = path[: -len(".index")]
    notes.append(f"{path!r} is an index file: used the checkpoint prefix {prefix!r}")
    return Resolved(given=given, path=prefix, container=TF_CHECKPOINT, notes=tuple(notes))
  m = _DATA_FILE.match(path)
  if m:
    prefix = m.group("prefix")
    notes.append(f"{path!r} is a data shard: used the checkpoint prefix {prefix!r}")
    return Resolved(given=given, path=prefix, container=TF_CHECKPOINT, notes=tuple(notes))
  if name == "checkpoint":
    notes.append(f"{path!r} is a checkpoint state file: resolved through its directory")
    return _resolve_directory(fileio.dirname(path) or ".", notes)
  if fileio.exists(path + ".index"):
    return Resolved(given=given, path=path, container=TF_CHECKPOINT, notes=tuple(notes))
  head = fileio.read_head(path, 4096)
  if head.startswith(_HDF5_MAGIC):
    return Resolved(given=given, path=path, container=KERAS_H5, notes=tuple(notes))
  if head.startswith(_ZIP_MAGIC):
    return Resolved(given=given, path=path, container=KERAS_ARCHIVE, notes=tuple(notes))
  if not head:
    raise errors.NotACheckpointError(
      f"{path!r} is an empty file, not a checkpoint.",
      received=f"{path} (0 bytes)",
      fix="Point at the checkpoint prefix (e.g. '.../ckpt-0') or a Keras weights file.",
    )
  text = head.decode("utf-8", errors="replace")
  if any(h in text for h in _PIPELINE_HINTS):
    raise errors.NotACheckpointError(
      f"{path!r} is a pipeline config (a text protobuf), not a checkpoint.",
      received=f"{path} (starts with {text.strip()[:40]!r})",
      fix=(
        "Pass the config as --pipeline_config_path and the checkpoint it "
        "fine-tunes from (its fine_tune_checkpoint) as the checkpoint."
      ),
    )
  raise errors.NotACheckpointError(
    f"{path!r} is not a checkpoint: it is neither a TF checkpoint file, nor "
    "HDF5, nor a Keras archive.",
    received=f"{path} ({fileio.getsize(path):,} bytes, starts with {head[:16]!r})",
    fix=(
      "Point at a TF checkpoint prefix (e.g. '.../ckpt-0'), its directory, a "
      "SavedModel directory, or a Keras '.weights.h5' / '.keras' file."
    ),
  )


def resolve(path: str) -> Resolved:
  """Resolves a user-given path to the checkpoint it names.

  Args:
    path: a checkpoint prefix, an ``.index`` or ``.data-*`` file, a directory
      (with a ``checkpoint`` state file or one ``*.index``), a SavedModel
      directory, a Keras ``.weights.h5`` / ``.h5`` / ``.keras`` file, or any of
      these as a ``tf.io.gfile`` URI.

  Returns:
    The resolved location and notes on how it was found.

  Raises:
    CheckpointNotFoundError: nothing exists there, or a directory holds none
      (or several, ambiguously).
    NotACheckpointError: the file exists but is not a checkpoint.
    UnreadableFileError: the file cannot be read.
  """
  if not isinstance(path, str) or not path:
    raise errors.UsageError(
      "A checkpoint path is required.",
      received=repr(path),
      fix="Pass the checkpoint prefix, file or directory.",
    )
  notes: list[str] = []
  # A prefix first: some file systems (ram://, object stores) report every
  # prefix as a directory.
  if fileio.exists(path + ".index") and not fileio.isdir(path + ".index"):
    return Resolved(given=path, path=path, container=TF_CHECKPOINT)
  if fileio.exists(path):
    if fileio.isdir(path):
      return _resolve_directory(path, notes)
    return _resolve_file(path, notes)
  parent = fileio.dirname(path) or "."
  fix = "Check the path for typos."
  if fileio.exists(parent) and fileio.isdir(parent):
    prefixes = sorted(_index_prefixes(parent), key=_sort_key)
    if prefixes:
      fix += " Checkpoints in " + repr(parent) + ": " + ", ".join(prefixes[-5:]) + "."
  if "PATH_TO_BE_CONFIGURED" in path:
    fix = (
      "The path still holds the zoo's PATH_TO_BE_CONFIGURED placeholder: replace it "
      "with the directory where you extracted the checkpoint."
    )
  raise _not_found(path, fix)
