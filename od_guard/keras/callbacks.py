"""`RestoreGuard`: the Keras callback that guards the restore at the start of
`model.fit`.

It subclasses `keras.callbacks.Callback` (Keras 3; Keras 2 where `keras` is
Keras 2, as in TF 2.15); `tf_keras_callbacks.TfKerasRestoreGuard` is the same
callback for tf-keras models. Both are thin adapters: the logic is
`restore_guard_core.RestoreGuardCore`'s, over `guarded_restore.restore`. The
report goes to the terminal, to `report_path` (JSON) and to TensorBoard
(`log_dir`, the same directory as Keras' own TensorBoard callback; written by
the chief only).

    guard = od_guard.keras.RestoreGuard("pretrained/ckpt-3", log_dir="logs")
    model.fit(data, epochs=3, callbacks=[guard, keras.callbacks.TensorBoard("logs")])
"""

from __future__ import annotations

import keras

from od_guard import _lazy
from od_guard.keras import restore_guard_core


class RestoreGuard(restore_guard_core.RestoreGuardCore, keras.callbacks.Callback):
  """Guards the restore of a checkpoint into a Keras model before training.

  See `restore_guard_core.RestoreGuardCore` for the arguments.
  """


# `od_guard.keras.callbacks.TfKerasRestoreGuard`, where it was before it got
# its own module; imports tf_keras only when asked for.
__getattr__ = _lazy.module_getattr(
  __name__, {"TfKerasRestoreGuard": "od_guard.keras.tf_keras_callbacks"}
)
