"""What a checkpoint is (its format) and what each saved value is for (its kind).

The kind of a value is told from its key alone, and where the key does not
say, from its shape and dtype: model weights, optimizer slots (one per
variable, such as Adam's moments), optimizer state (hyperparameters, TF1's
beta powers) and bookkeeping (step and save counters). The inventory
re-exports these names; the readers of each format classify with them.
"""

from __future__ import annotations

import re

from od_guard.checkpoint import keys as checkpoint_keys

# Formats.
TF2_OBJECT_BASED = "tf2_object_based"
TF1_NAME_BASED = "tf1_name_based"
SAVED_MODEL = "saved_model"
KERAS3_WEIGHTS = "keras3_weights"
KERAS2_HDF5 = "keras2_hdf5"

# Kinds of saved value.
MODEL = "model"
OPTIMIZER_SLOT = "optimizer_slot"
OPTIMIZER_STATE = "optimizer_state"
BOOKKEEPING = "bookkeeping"
KINDS = (MODEL, OPTIMIZER_SLOT, OPTIMIZER_STATE, BOOKKEEPING)

# Names of values that are bookkeeping wherever they sit: at the root of a TF2
# checkpoint, as a TF1 name, or under an optimizer. None holds a '/'.
BOOKKEEPING_NAMES = frozenset(
  {
    "save_counter",
    "step",
    "global_step",
    "iterations",
    "iter",
    "epoch",
    "_CHECKPOINTABLE_OBJECT_GRAPH",
    "_SAVEABLE_OBJECT_GRAPH",
    # tf-keras BackupAndRestore's own counters.
    "ckpt_saved_epoch",
    "ckpt_saved_batch",
    "train_counter",
  }
)
# Object names under which TF2 checkpoints keep an optimizer. Each contains
# "optimizer", which the inventory's fast path relies on.
_OPTIMIZER_ROOTS = frozenset({"optimizer", "_optimizer", "optimizer_state"})
# Last name components of TF1 slots (besides 'ExponentialMovingAverage*').
_TF1_SLOT_SUFFIXES = (
  "Momentum",
  "RMSProp",
  "RMSProp_1",
  "Adam",
  "Adam_1",
  "Adagrad",
  "Ftrl",
  "Ftrl_1",
  "AdamW",
  "AdamW_1",
  "Adadelta",
  "Adadelta_1",
)
_TF1_OPTIMIZER_STATE = re.compile(r"^(beta1_power|beta2_power|learning_rate)(_\d+)?$")


def optimizer_kind(name: str, shape: tuple[int, ...], dtype: str) -> str:
  """The kind of a value under an optimizer whose key names no slot link.

  Keras optimizers since tf-keras 2.11 (and Keras 3) keep slots in a flat
  ``_variables`` list: non-scalars are slots, the integer scalar is the
  iteration counter, other scalars are hyperparameters.

  Args:
    name: the value's own name, the last component of its path.
    shape: its shape.
    dtype: its numpy-style dtype name.

  Returns:
    BOOKKEEPING, OPTIMIZER_SLOT or OPTIMIZER_STATE.
  """
  if name in BOOKKEEPING_NAMES or name == "_iterations" or (not shape and dtype.startswith("int")):
    return BOOKKEEPING
  return OPTIMIZER_SLOT if shape else OPTIMIZER_STATE


def tf2_kind(
  path: tuple[str, ...], key: str, shape: tuple[int, ...], dtype: str
) -> tuple[str, str]:
  """The kind of a value in a TF2 object-based checkpoint.

  Args:
    path: the decoded object path of `key` (`checkpoint_keys.split_key`).
    key: the checkpoint key.
    shape: the value's shape.
    dtype: its numpy-style dtype name.

  Returns:
    (kind, slot_of): slot_of is the decoded path of the variable an optimizer
    slot belongs to, "" for other kinds.
  """
  if checkpoint_keys.OPTIMIZER_SLOT_INFIX in key:
    primary = key.split(checkpoint_keys.OPTIMIZER_SLOT_INFIX, 1)[0]
    return OPTIMIZER_SLOT, "/".join(checkpoint_keys.unescape(c) for c in primary.split("/"))
  for i, part in enumerate(path):
    if part in _OPTIMIZER_ROOTS:
      # Keras 3 optimizers also track the model's own trainable variables;
      # TF keys those under the optimizer when that path is the shortest.
      if i + 1 < len(path) and path[i + 1] == "_trainable_variables":
        return MODEL, ""
      return optimizer_kind(path[-1], shape, dtype), ""
  if len(path) == 1 and path[0] in BOOKKEEPING_NAMES:
    return BOOKKEEPING, ""
  return MODEL, ""


def tf1_kind(name: str, all_names: frozenset[str]) -> tuple[str, str]:
  """The kind of a value in a TF1 name-based checkpoint.

  Args:
    name: the variable's name.
    all_names: every name in the checkpoint: a slot is named after its
      variable, which must be there too.

  Returns:
    (kind, slot_of): slot_of is the name of the variable an optimizer slot
    belongs to, "" for other kinds.
  """
  base, _, last = name.rpartition("/")
  if (
    base
    and (last in _TF1_SLOT_SUFFIXES or last.startswith("ExponentialMovingAverage"))
    and base in all_names
  ):
    return OPTIMIZER_SLOT, base
  if name in BOOKKEEPING_NAMES:
    return BOOKKEEPING, ""
  if _TF1_OPTIMIZER_STATE.match(name):
    return OPTIMIZER_STATE, ""
  return MODEL, ""
