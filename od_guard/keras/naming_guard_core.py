"""What the `NamingGuard` callbacks do, for either Keras.

`NamingGuardCore` holds the callbacks' arguments (checked in `__init__`) and
their hooks: at the end of each epoch (and of training) it checks every
checkpoint written or rewritten since the last look in the directory it
watches, with `save_guard.check_saved` (warn, or error: quarantine and stop).
It imports no Keras: `naming_callbacks.NamingGuard` mixes it into
`keras.callbacks.Callback`, `tf_keras_naming_callbacks.TfKerasNamingGuard`
into `tf_keras.callbacks.Callback`.
"""

from __future__ import annotations

from collections.abc import Sequence
import os

from od_guard.keras import arguments
from od_guard.naming import rules as naming_rules
from od_guard.naming import save_guard

# The files ModelCheckpoint and BackupAndRestore write: a TF checkpoint (by its
# index) or a Keras weights / model file.
_SUFFIXES = (".index", ".weights.h5", ".keras", ".h5")


class NamingGuardCore:
  """Checks the checkpoints saved under `directory` against naming rules.

  Place the callback *after* `ModelCheckpoint` or `BackupAndRestore` in the
  callbacks list, so that it sees each epoch's save.

  Args:
    directory: where ModelCheckpoint / BackupAndRestore write (searched
      recursively).
    preset: naming presets to apply (default 'keras' when no rules file).
    rules: a TOML rules file.
    mode: 'warn' or 'error'.
    log_dir: TensorBoard directory for violations (at the epoch).

  Attributes:
    rules: the naming rules applied.
    checked: every checkpoint checked so far, in order.

  Raises:
    UsageError: an argument has the wrong type or value (e.g. `mode`).
    RulesError: the rules file or a preset name is invalid.
  """

  def __init__(
    self,
    directory: str | os.PathLike,
    *,
    preset: str | Sequence[str] | None = None,
    rules: str | os.PathLike | None = None,
    mode: str = save_guard.ERROR,
    log_dir: str | os.PathLike | None = None,
  ):
    super().__init__()
    self.directory = arguments.path("directory", directory)
    save_guard.validate_mode(mode)
    self.mode = mode
    self.log_dir = arguments.path("log_dir", log_dir, optional=True)
    if isinstance(preset, str):
      presets = [preset]
    else:
      presets = list(arguments.strings("preset", preset or (), example="keras"))
    rules_file = arguments.path("rules", rules, optional=True)
    self.rules = naming_rules.load(rules_file, presets or ([] if rules_file else ["keras"]))
    self.checked: list[str] = []
    self._seen: dict[str, float] = {}
    self._epoch = 0

  def _new_checkpoints(self) -> list[str]:
    """Checkpoints written or rewritten under the directory since the last
    call (by modification time), quarantined ones aside."""
    out = []
    for root, _, files in os.walk(self.directory):
      for f in files:
        if f.endswith(_SUFFIXES) and save_guard.QUARANTINE not in f:
          path = os.path.join(root, f)
          mtime = os.path.getmtime(path)
          if self._seen.get(path) != mtime:
            self._seen[path] = mtime
            out.append(path[: -len(".index")] if f.endswith(".index") else path)
    return sorted(out)

  def _check(self) -> None:
    for path in self._new_checkpoints():
      self.checked.append(path)
      save_guard.check_saved(
        path, self.rules, mode=self.mode, log_dir=self.log_dir, step=self._epoch
      )

  def on_train_begin(self, logs=None) -> None:
    del logs
    self._new_checkpoints()  # what was there before training is not ours to judge

  def on_epoch_end(self, epoch: int, logs=None) -> None:
    del logs
    self._epoch = epoch + 1
    self._check()

  def on_train_end(self, logs=None) -> None:
    del logs
    self._check()
