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
from od_guard.checkpoint import journal
from od_guard.checkpoint import paths as checkpoint_path
from od_guard.checkpoint import safe_output
from od_guard.naming import lint as naming_lint
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
_STATE_MAX_BYTES = 16 << 20


class NamingViolationError(errors.OdGuardError):
  """A saved checkpoint broke the naming rules (error mode); it was quarantined.

  Attributes:
    violations: every violation found, each with its rule.
    quarantined: the checkpoint's new (quarantine) path.
  """

  exit_code = 1

  def __init__(
    self,
    violations: Sequence[naming_lint.Violation],
    quarantined: str,
    rules: naming_rules.Rules,
  ):
    self.violations = violations
    self.quarantined = quarantined
    listing = "\n".join(naming_lint.violation_lines(violations, limit=6))
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
  """Moves a saved checkpoint to its quarantine name; returns that name.

  Crash-safe and never clobbering: the moves are a journaled transaction
  (`safe_output`): a journal ``<name>.od_guard-journal`` is published, the
  checkpoint leaves the state file, each file gets its quarantine name by a
  hard link (never replacing an existing file; a taken quarantine name gives
  ``.quarantined-2``, ``-3`` ...) and loses its old name, then the journal is
  deleted. Killed at any instant, the checkpoint is whole under its old name or
  under its quarantine name (with, at worst, both names linked to the same
  files); the next check in that directory completes the move.
  """
  directory = os.path.dirname(path) or "."
  try:
    with safe_output.Directory(directory) as d:
      _recover_quarantines(d)
      if d.exists(os.path.basename(path) + ".index"):
        return _quarantine_bundle(d, path)
      return _quarantine_file(d, path)
  except OSError as e:
    raise safe_output.write_error(e, directory, "quarantine the checkpoint") from e


def _free_name(d: safe_output.Directory, make, taken) -> str:
  """The first of make(''), make('-2'), make('-3') ... that `taken` says is free."""
  for n in range(1, 10_000):
    name = make("" if n == 1 else f"-{n}")
    if not taken(name):
      return name
  raise safe_output.DestinationError(
    "Every quarantine name is taken.",
    received=d.join(make("")),
    fix="Delete old quarantined checkpoints.",
  )


def _quarantine_bundle(d: safe_output.Directory, prefix: str) -> str:
  """A TF checkpoint: its index and data shards take the prefix
  ``<prefix>.quarantined``, and it leaves the directory's state file."""
  base = os.path.basename(prefix)
  shard = checkpoint_path.data_shard_names(base)
  names = d.listdir()
  files = [n for n in names if shard.match(n)] + [base + ".index"]
  target = _free_name(
    d,
    lambda suffix: base + QUARANTINE + suffix,
    lambda t: (
      any(n == t + ".index" or n.startswith(t + ".data-") for n in names)
      or d.exists(journal.journal_name(t))
    ),
  )
  plan = journal.quarantine_plan(base, [(n, target + n[len(base) :]) for n in files], state=True)
  plan = journal.publish_journal(d, plan, safe_output.new_token())
  journal.apply_plan(d, plan, lambda: _drop_from_state(d.path, base))
  return os.path.join(os.path.dirname(prefix), target)


def _quarantine_file(d: safe_output.Directory, path: str) -> str:
  """A Keras file: the quarantine mark goes before the suffix Keras insists on
  (``e1.weights.h5`` -> ``e1.quarantined.weights.h5``)."""
  name = os.path.basename(path)
  root, ext = os.path.splitext(name)
  if root.endswith(".weights"):
    root, ext = root[: -len(".weights")], ".weights" + ext
  target = _free_name(d, lambda suffix: root + QUARANTINE + suffix + ext, d.exists)
  if ext:
    plan = journal.quarantine_plan(root, [(name, target)], state=False)
    plan = journal.publish_journal(d, plan, safe_output.new_token())
    journal.apply_plan(d, plan)
  else:  # one file, no journal needed: a hard link, then the old name goes
    d.move_no_clobber(name, target)
    d.fsync()
  return os.path.join(os.path.dirname(path), target)


def _recover_quarantines(d: safe_output.Directory) -> None:
  """Completes quarantines that a killed run left half done in `d`."""

  def drop(plan: journal.JournalPlan) -> None:
    if plan.state:
      _drop_from_state(d.path, plan.base)

  done, left = journal.recover(d, "quarantine", before_moves=drop)
  removed, left_too = journal.clean_leftovers(d, "quarantine")
  left += left_too
  for name in removed:
    _LOG.warning("od_guard: removed %s, left by an interrupted quarantine", d.join(name))
  for base in done:
    _LOG.warning("od_guard: completed the interrupted quarantine of %s", d.join(base))
  for message in left:
    _LOG.warning("od_guard: %s", message)


def recover_quarantines(directory: str) -> None:
  """Completes interrupted quarantines in a local `directory` (a no-op for a
  remote one or when there is nothing to do); never raises for I/O errors,
  which are logged."""
  if fileio.is_remote(directory) or not os.path.isdir(directory or "."):
    return
  try:
    with safe_output.Directory(directory or ".") as d:
      if any(
        n.endswith(journal.JOURNAL_SUFFIX) or n.startswith(".od_guard-quarantine-")
        for n in d.listdir()
      ):
        _recover_quarantines(d)
  except (OSError, errors.OdGuardError) as e:
    _LOG.warning("od_guard: cannot complete an interrupted quarantine in %s: %s", directory, e)


def _drop_from_state(directory: str, base: str) -> None:
  """Removes a checkpoint from the 'checkpoint' state file, so that resuming
  does not look for it; removes the file when no checkpoint is left in it."""
  state = os.path.join(directory, "checkpoint")
  if not os.path.exists(state):
    return
  with fileio.open_binary(state) as f:  # a regular file only: a FIFO would block
    text = f.read(_STATE_MAX_BYTES).decode("utf-8", errors="replace")
  kept = _state_without(text.splitlines(), base)
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
) -> list[naming_lint.Violation]:
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
  recover_quarantines(os.path.dirname(path))
  inv = inventory.read_inventory(path, object_graph=inventory.OBJECT_GRAPH_NONE)
  violations, _ = naming_lint.check(rules, inv.variables)
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
