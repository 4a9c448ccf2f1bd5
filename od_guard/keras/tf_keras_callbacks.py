"""`TfKerasRestoreGuard`: the restore guard for models of the `tf_keras`
package (Keras 2; what `tf.keras` is under TF 2.16+ with TF_USE_LEGACY_KERAS=1).

The same callback as `callbacks.RestoreGuard`, subclassing
`tf_keras.callbacks.Callback`; the logic is `restore_guard_core.RestoreGuardCore`'s.

    guard = od_guard.keras.TfKerasRestoreGuard("pretrained/ckpt-3", input_shape=(None, 64, 64, 3))
    model.fit(data, epochs=3, callbacks=[guard])
"""

from __future__ import annotations

import tf_keras

from od_guard.keras import restore_guard_core


class TfKerasRestoreGuard(restore_guard_core.RestoreGuardCore, tf_keras.callbacks.Callback):
  """Guards the restore of a checkpoint into a tf-keras model before training.

  See `restore_guard_core.RestoreGuardCore` for the arguments.
  """
