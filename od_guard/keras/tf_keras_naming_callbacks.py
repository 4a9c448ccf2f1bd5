"""`TfKerasNamingGuard`: the naming-rules callback for models of the
`tf_keras` package (Keras 2; what `tf.keras` is under TF 2.16+ with
TF_USE_LEGACY_KERAS=1).

The same callback as `naming_callbacks.NamingGuard`, subclassing
`tf_keras.callbacks.Callback`; the logic is `naming_guard_core.NamingGuardCore`'s.

    fit(..., callbacks=[tf_keras.callbacks.BackupAndRestore("backup"),
                        od_guard.keras.TfKerasNamingGuard("backup", mode="warn")])
"""

from __future__ import annotations

import tf_keras

from od_guard.keras import naming_guard_core


class TfKerasNamingGuard(naming_guard_core.NamingGuardCore, tf_keras.callbacks.Callback):
  """Checks the checkpoints a tf-keras `fit` saves against naming rules.

  See `naming_guard_core.NamingGuardCore` for the arguments.
  """
