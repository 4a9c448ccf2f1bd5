"""Keras callbacks that guard the restore at the start of `model.fit`.

* `RestoreGuard` subclasses `keras.callbacks.Callback` (Keras 3; Keras 2 where
  `keras` is Keras 2, as in TF 2.15);
* `TfKerasRestoreGuard` subclasses `tf_keras.callbacks.Callback`.

Both are thin adapters over `od_guard.guarded_restore.restore`: in
`on_train_begin`, before the first batch, they build the model if asked
(`input_shape`), predict and diagnose the restore, apply the policy, restore,
and verify the values on every replica. A failing verdict raises
`RestoreGuardError`, which stops `fit` before the first batch. The report goes
to the terminal, to `report_path` (JSON) and to TensorBoard (`log_dir`, the
same directory as Keras' own TensorBoard callback; written by the chief only).

    guard = od_guard.callbacks.RestoreGuard("pretrained/ckpt-3", log_dir="logs")
    model.fit(data, epochs=3, callbacks=[guard, keras.callbacks.TensorBoard("logs")])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from od_guard.keras import model_facts as keras_model


def _define(base: type, name: str) -> type:
  from od_guard.keras import guarded_restore

  class _RestoreGuard(base):  # type: ignore[misc, valid-type]
    """Guards the restore of `checkpoint` into the model before training.

    Args:
      checkpoint: a TF checkpoint (prefix, directory, .index ...) or a Keras
        weights file (.weights.h5 / .keras for Keras 3, .h5 for Keras 2).
      policy: an `od_guard.policy.Policy` (default: the 'default' preset).
      input_shape: builds the model from this shape if `fit` has not built it
        yet (tf-keras builds lazily, on the first batch).
      exclude: object-path prefixes not to restore (e.g. a new head).
      log_dir: TensorBoard log directory (the report goes to its 'train' run).
      report_path: where to write the JSON report.
      verify: check the restored values on every replica.
      quiet: do not print the text report.
    """

    def __init__(
      self,
      checkpoint: str,
      *,
      policy=None,
      input_shape: Sequence[int | None] | None = None,
      exclude: Sequence[str] = (),
      log_dir: str | None = None,
      report_path: str | None = None,
      verify: bool = True,
      quiet: bool = False,
    ):
      super().__init__()
      self.checkpoint = checkpoint
      self.policy = policy
      self.input_shape = input_shape
      self.exclude = tuple(exclude)
      self.log_dir = log_dir
      self.report_path = report_path
      self.verify = verify
      self.quiet = quiet
      self.report = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
      del logs
      self.report = guarded_restore.restore(
        self.model,
        self.checkpoint,
        policy=self.policy,
        input_shape=self.input_shape,
        exclude=self.exclude,
        verify=self.verify,
        log_dir=self.log_dir,
        report_path=self.report_path,
        quiet=self.quiet,
      )

  _RestoreGuard.__name__ = _RestoreGuard.__qualname__ = name
  _RestoreGuard.__module__ = __name__
  return _RestoreGuard


__getattr__ = keras_model.lazy_callback_classes(
  __name__, _define, ("RestoreGuard", "TfKerasRestoreGuard")
)
