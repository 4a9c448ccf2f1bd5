"""The Keras integration (Keras 3 and tf-keras): facts about a live model, the
guarded restore for custom loops, and callbacks for `model.fit` (one class per
module: `callbacks.RestoreGuard` and `naming_callbacks.NamingGuard` subclass
Keras 3's Callback, `tf_keras_callbacks.TfKerasRestoreGuard` and
`tf_keras_naming_callbacks.TfKerasNamingGuard` tf-keras'; their logic is in
`restore_guard_core` and `naming_guard_core`). Adapts only: the restore
pipeline lives in `od_guard.restore`. Nothing here imports Keras until a
callback class is asked for.

    from od_guard import keras as od_keras
    model.fit(data, callbacks=[od_keras.RestoreGuard("pretrained/ckpt-3")])
    report = od_keras.restore(model, "pretrained/ckpt-3", input_shape=(None, 64, 64, 3))
"""

from od_guard import _lazy

_EXPORTS = {
  "RestoreGuard": "od_guard.keras.callbacks",
  "TfKerasRestoreGuard": "od_guard.keras.tf_keras_callbacks",
  "NamingGuard": "od_guard.keras.naming_callbacks",
  "TfKerasNamingGuard": "od_guard.keras.tf_keras_naming_callbacks",
  "restore": "od_guard.keras.guarded_restore",
  "RestoreGuardError": "od_guard.keras.guarded_restore",
}

__all__ = list(_EXPORTS)
__getattr__ = _lazy.module_getattr(__name__, _EXPORTS)
