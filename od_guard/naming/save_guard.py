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
API's own saves), and `callbacks`-style Keras classes in `naming_callbacks`.
"""

from __future__ import annotations

import logging
import os
import re

from od_guard import errors
from od_guard.checkpoint import inventory
from od_guard.checkpoint import key_folding
from od_guard.naming import rules as naming_rules

WARN = "warn"
ERROR = "error"
MODES = (WARN, ERROR)
QUARANTINE = ".quarantined"
_LOG = logging.getLogger("od_guard")


class NamingViolationError(errors.OdGuardError):
  """A saved checkpoint broke the naming rules (error mode); it was quarantined."""

  exit_code = 1

  def __init__(self, violations, quarantined: str, rules: naming_rules.Rules):
    self.violations = violations
    self.quarantined = quarantined
    by_rule: dict[str, list[str]] = {}
    for v in violations:
      by_rule.setdefault(f"{v.rule}: {v.message}", []).append(v.path)
    listing = "\n".join(
      f"  [{rule}]\n" + "\n".join("    " + l for l in key_folding.fold_keys(paths, limit=6))
      for rule, paths in by_rule.items()
    )
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


def _validate_mode(mode: str) -> None:
  if mode not in MODES:
    raise errors.UsageError(
      f"Unknown naming mode {mode!r}.", received=repr(mode), fix=f"Use one of: {', '.join(MODES)}."
    )


def _quarantine(path: str) -> str:
  """Renames a saved checkpoint's files to the quarantine name; returns it."""
  if os.path.exists(path + ".index"):
    directory, base = os.path.split(path)
    target = path + QUARANTINE
    for name in os.listdir(directory or "."):
      if name == base + ".index" or re.match(re.escape(base) + r"\.data-\d{5}-of-\d{5}$", name):
        os.replace(
          os.path.join(directory, name),
          os.path.join(directory, target.rsplit("/", 1)[-1] + name[len(base) :]),
        )
    _drop_from_state(directory, base)
    return target
  root, ext = os.path.splitext(path)
  if root.endswith(".weights"):
    root, ext = root[: -len(".weights")], ".weights" + ext
  target = root + QUARANTINE + ext
  os.replace(path, target)
  return target


def _drop_from_state(directory: str, base: str) -> None:
  """Removes a checkpoint from the 'checkpoint' state file, so that resuming
  does not look for it."""
  state = os.path.join(directory, "checkpoint")
  if not os.path.exists(state):
    return
  with open(state, encoding="utf-8") as f:
    lines = f.read().splitlines()
  kept = [l for l in lines if not re.search(r'"(.*/)?' + re.escape(base) + r'"$', l)]
  latest = [l for l in kept if l.startswith("all_model_checkpoint_paths:")]
  if latest:
    kept = [re.sub(r"^all_model_checkpoint_paths:", "model_checkpoint_path:", latest[-1])] + [
      l for l in kept if not l.startswith("model_checkpoint_path:")
    ]
  from od_guard.checkpoint import fileio

  if any(l.startswith("model_checkpoint_path:") for l in kept):
    fileio.atomic_write_text(state, "\n".join(kept) + "\n")
  else:
    os.unlink(state)


def _log(violations, log_dir: str | None, step: int | None, path: str) -> None:
  if log_dir:
    from od_guard.report import tensorboard

    tensorboard.write_naming(violations, path, log_dir, step=step or 0)


def check_saved(
  path: str,
  rules: naming_rules.Rules,
  *,
  mode: str = ERROR,
  log_dir: str | None = None,
  step: int | None = None,
) -> list:
  """Checks a checkpoint that was just saved; see the module docstring.

  Returns:
    The violations (empty when the names follow the rules).

  Raises:
    NamingViolationError: in error mode, when there are violations (after
      quarantining the checkpoint).
  """
  _validate_mode(mode)
  inv = inventory.read_inventory(path, object_graph=inventory.OBJECT_GRAPH_NONE)
  violations, _ = naming_rules.check(rules, inv.variables)
  if not violations:
    return []
  _log(violations, log_dir, step, inv.prefix)
  if mode == ERROR:
    quarantined = _quarantine(inv.prefix)
    raise NamingViolationError(violations, quarantined, rules)
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
  _validate_mode(mode)
  original = manager.save

  def save_and_check(*args, **kwargs):
    path = original(*args, **kwargs)
    if path:
      step = kwargs.get("checkpoint_number")
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
