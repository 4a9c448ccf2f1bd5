"""Naming rules enforced whenever a checkpoint is saved.

The check reads the new checkpoint's names only (its index, or an HDF5 file's
dataset headers): milliseconds, whatever the checkpoint's size. Modes:

* ``warn``: log the violations (and to TensorBoard at the save step);
* ``error``: the checkpoint is kept, nothing is lost, but under a quarantine
  name (``ckpt-3`` -> ``ckpt-3.quarantined``, still a valid checkpoint prefix),
  it is dropped from the directory's ``checkpoint`` state file, and
  `NamingViolationError` stops the run, listing each violation and its rule.

Adapters: `save` (for ``tf.train.Checkpoint.save``), `guard_manager` (any
``tf.train.CheckpointManager``; od_guard's model_main_tf2 uses it for the OD
API's own saves), and the Keras callbacks `od_guard.keras.NamingGuard` /
`TfKerasNamingGuard`.
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
import os
import re

from od_guard import errors
from od_guard.checkpoint import fileio
from od_guard.checkpoint import inventory
from od_guard.naming import rules as naming_rules

WARN = "warn"
ERROR = "error"
MODES = (WARN, ERROR)
QUARANTINE = ".quarantined"
_LOG = logging.getLogger("od_guard")
# The lines of a directory's 'checkpoint' state file (a CheckpointState proto
# in text format) that name its latest checkpoint and every kept one.
_LATEST = "model_checkpoint_path:"
_ALL = "all_model_checkpoint_paths:"


class NamingViolationError(errors.OdGuardError):
  """A saved checkpoint broke the naming rules (error mode); it was quarantined.

  Attributes:
    violations: every violation found, each with its rule.
    quarantined: the checkpoint's new (quarantine) path.
  """

  exit_code = 1

  def __init__(
    self,
    violations: Sequence[naming_rules.Violation],
    quarantined: str,
    rules: naming_rules.Rules,
  ):
    self.violations = violations
    self.quarantined = quarantined
    listing = "\n".join(naming_rules.violation_lines(violations, limit=6))
    super().__init__(
      f"The checkpoint just saved breaks the naming rules {rules.name!r} "
      f"({len(violations)} violation(s)); it was kept under a quarantine name and "
      "the run stopped.\n" + listing,
      received=quarantined,
      fix=(
        "Give the offending variables the expected names (attribute / scope names), or "
        "extend the rules (--rules file). The quarantined checkpoint is intact: "
        "`od-guard remap` can rename it."
      ),
    )


def validate_mode(mode: str) -> None:
  """Raises a `UsageError` unless `mode` is 'warn' or 'error'."""
  if mode not in MODES:
    raise errors.UsageError(
      f"Unknown naming mode {mode!r}.",
      received=f"mode={mode!r}",
      fix=f"Use one of: {', '.join(MODES)}.",
    )


def _quarantine(path: str) -> str:
  """Moves a saved checkpoint to its quarantine name; returns that name."""
  if os.path.exists(path + ".index"):
    return _quarantine_bundle(path)
  return _quarantine_file(path)


def _quarantine_bundle(prefix: str) -> str:
  """A TF checkpoint: its index and data shards take the prefix
  ``<prefix>.quarantined``, and it leaves the directory's state file."""
  directory, base = os.path.split(prefix)
  shard = re.compile(re.escape(base) + r"\.data-\d{5}-of-\d{5}$")
  for name in os.listdir(directory or "."):
    if name == base + ".index" or shard.match(name):
      os.replace(
        os.path.join(directory, name),
        os.path.join(directory, base + QUARANTINE + name[len(base) :]),
      )
  _drop_from_state(directory, base)
  return prefix + QUARANTINE


def _quarantine_file(path: str) -> str:
  """A Keras file: the quarantine mark goes before the suffix Keras insists on
  (``e1.weights.h5`` -> ``e1.quarantined.weights.h5``)."""
  root, ext = os.path.splitext(path)
  if root.endswith(".weights"):
    root, ext = root[: -len(".weights")], ".weights" + ext
  target = root + QUARANTINE + ext
  os.replace(path, target)
  return target


def _drop_from_state(directory: str, base: str) -> None:
  """Removes a checkpoint from the 'checkpoint' state file, so that resuming
  does not look for it; removes the file when no checkpoint is left in it."""
  state = os.path.join(directory, "checkpoint")
  if not os.path.exists(state):
    return
  with open(state, encoding="utf-8") as f:
    kept = _state_without(f.read().splitlines(), base)
  if any(l.startswith(_LATEST) for l in kept):
    fileio.atomic_write_text(state, "\n".join(kept) + "\n")
  else:
    os.unlink(state)


def _state_without(lines: list[str], base: str) -> list[str]:
  """The state file's lines without checkpoint `base`; the newest checkpoint
  left becomes the latest."""
  named = re.compile(r'"(.*/)?' + re.escape(base) + r'"$')
  kept = [l for l in lines if not named.search(l)]
  remaining = [l for l in kept if l.startswith(_ALL)]
  if remaining:
    latest = _LATEST + remaining[-1][len(_ALL) :]
    kept = [latest] + [l for l in kept if not l.startswith(_LATEST)]
  return kept


def check_saved(
  path: str,
  rules: naming_rules.Rules,
  *,
  mode: str = ERROR,
  log_dir: str | None = None,
  step: int | None = None,
) -> list[naming_rules.Violation]:
  """Checks a checkpoint that was just saved; see the module docstring.

  Args:
    path: the checkpoint (a TF prefix, or a Keras weights file).
    rules: the naming rules.
    mode: 'warn' or 'error'.
    log_dir: also write the violations to TensorBoard there.
    step: the TensorBoard step (default 0).

  Returns:
    The violations (empty when the names follow the rules).

  Raises:
    NamingViolationError: in error mode, when there are violations (after
      quarantining the checkpoint).
    UsageError: `mode` is neither 'warn' nor 'error'.
  """
  validate_mode(mode)
  inv = inventory.read_inventory(path, object_graph=inventory.OBJECT_GRAPH_NONE)
  violations, _ = naming_rules.check(rules, inv.variables)
  if not violations:
    return []
  if log_dir:
    from od_guard.report import tensorboard

    tensorboard.write_naming(violations, inv.prefix, log_dir, step=step or 0)
  if mode == ERROR:
    raise NamingViolationError(violations, _quarantine(inv.prefix), rules)
  _LOG.warning(
    "od_guard: %s breaks the naming rules %r: %d violation(s), e.g. %s (%s)",
    inv.prefix,
    rules.name,
    len(violations),
    violations[0].path,
    violations[0].message,
  )
  return violations


def save(
  checkpoint,
  file_prefix: str,
  rules: naming_rules.Rules,
  *,
  mode: str = ERROR,
  log_dir: str | None = None,
  step: int | None = None,
) -> str:
  """`checkpoint.save(file_prefix)`, then the naming check; returns the path."""
  path = checkpoint.save(file_prefix)
  check_saved(path, rules, mode=mode, log_dir=log_dir, step=step)
  return path


def guard_manager(
  manager, rules: naming_rules.Rules, *, mode: str = ERROR, log_dir: str | None = None
):
  """Makes `manager.save()` check each checkpoint it writes; returns the manager."""
  validate_mode(mode)
  original = manager.save

  def save_and_check(*args, **kwargs):
    path = original(*args, **kwargs)
    if path:
      step = kwargs.get("checkpoint_number")
      if step is None:
        # model_lib_v2 calls manager.save() bare; its Checkpoint tracks the global step.
        counter = getattr(manager.checkpoint, "step", None)
        step = int(counter.numpy()) if counter is not None else None
      check_saved(
        path, rules, mode=mode, log_dir=log_dir, step=int(step) if step is not None else None
      )
    return path

  manager.save = save_and_check
  return manager


def guarded_manager_class(
  rules: naming_rules.Rules, *, mode: str = ERROR, log_dir: str | None = None
):
  """A tf.train.CheckpointManager subclass whose instances are guarded (to
  substitute for the class in code that builds its own manager)."""
  import tensorflow as tf

  class GuardedCheckpointManager(tf.train.CheckpointManager):
    def __init__(self, *args, **kwargs):
      super().__init__(*args, **kwargs)
      guard_manager(self, rules, mode=mode, log_dir=log_dir)

  return GuardedCheckpointManager
