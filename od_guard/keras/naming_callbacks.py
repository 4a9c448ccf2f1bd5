"""`NamingGuard`: the Keras callback that enforces naming rules on the
checkpoints training saves.

It subclasses `keras.callbacks.Callback` (Keras 3; Keras 2 where `keras` is
Keras 2, as in TF 2.15); `tf_keras_naming_callbacks.TfKerasNamingGuard` is the
same callback for tf-keras. The logic is `naming_guard_core.NamingGuardCore`'s.
Place it *after* `ModelCheckpoint` or `BackupAndRestore` in the callbacks list:

    fit(..., callbacks=[keras.callbacks.ModelCheckpoint("ckpts/e{epoch}.weights.h5",
                                                        save_weights_only=True),
                        od_guard.keras.NamingGuard("ckpts", preset="keras")])
"""

from __future__ import annotations

import keras

from od_guard import _lazy
from od_guard.keras import naming_guard_core


class NamingGuard(naming_guard_core.NamingGuardCore, keras.callbacks.Callback):
  """Checks the checkpoints a Keras `fit` saves against naming rules.

  See `naming_guard_core.NamingGuardCore` for the arguments.
  """


# `od_guard.keras.naming_callbacks.TfKerasNamingGuard`, where it was before it
# got its own module; imports tf_keras only when asked for.
__getattr__ = _lazy.module_getattr(
  __name__,
  {"TfKerasNamingGuard": "od_guard.keras.tf_keras_naming_callbacks"},
)
