"""Keras callbacks that enforce naming rules on the checkpoints training saves.

Place `NamingGuard` (Keras 3) / `TfKerasNamingGuard` (tf-keras) *after*
`ModelCheckpoint` or `BackupAndRestore` in the callbacks list: at the end of
each epoch (and of training) it checks every checkpoint written or rewritten
since the last look in the directory it watches, with `save_guard.check_saved`
(warn, or error: quarantine and stop).

    fit(..., callbacks=[keras.callbacks.ModelCheckpoint("ckpts/e{epoch}.weights.h5",
                                                        save_weights_only=True),
                        od_guard.naming_callbacks.NamingGuard("ckpts", preset="keras")])
"""

from __future__ import annotations

from collections.abc import Sequence
import os

from od_guard.keras import model_facts as keras_model

_SUFFIXES = (".index", ".weights.h5", ".keras", ".h5")


def _define(base: type, name: str) -> type:
  from od_guard.naming import rules as naming_rules
  from od_guard.naming import save_guard

  class _NamingGuard(base):  # type: ignore[misc, valid-type]
    """Checks the checkpoints saved under `directory` against naming rules.

    Args:
      directory: where ModelCheckpoint / BackupAndRestore write (searched
        recursively).
      preset: naming presets to apply (default 'keras' when no rules file).
      rules: a TOML rules file.
      mode: 'warn' or 'error'.
      log_dir: TensorBoard directory for violations (at the epoch).
    """

    def __init__(
      self,
      directory: str,
      *,
      preset: str | Sequence[str] | None = None,
      rules: str | None = None,
      mode: str = save_guard.ERROR,
      log_dir: str | None = None,
    ):
      super().__init__()
      presets = [preset] if isinstance(preset, str) else list(preset or [])
      self.rules = naming_rules.load(rules, presets or ([] if rules else ["keras"]))
      self.directory = directory
      self.mode = mode
      self.log_dir = log_dir
      self.checked: list[str] = []
      self._seen: dict[str, float] = {}
      self._epoch = 0

    def _new_checkpoints(self) -> list[str]:
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

    def on_train_begin(self, logs=None):
      del logs
      self._new_checkpoints()  # what was there before training is not ours to judge

    def on_epoch_end(self, epoch, logs=None):
      del logs
      self._epoch = epoch + 1
      self._check()

    def on_train_end(self, logs=None):
      del logs
      self._check()

  _NamingGuard.__name__ = _NamingGuard.__qualname__ = name
  _NamingGuard.__module__ = __name__
  return _NamingGuard


__getattr__ = keras_model.lazy_callback_classes(
  __name__, _define, ("NamingGuard", "TfKerasNamingGuard")
)
