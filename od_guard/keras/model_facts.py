"""The Keras adapter: facts about a live Keras model (Keras 3 or tf-keras).

No matching logic lives here: which Keras a model belongs to, whether it is
built, which layers are not, building it from an input shape, and the layout
of the weight file its own `save_weights` would write.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from od_guard.restore.keras_layout import KERAS3
from od_guard.restore.keras_layout import TF_KERAS


def flavour(model: Any) -> str | None:
  """KERAS3 for a Keras 3 model, TF_KERAS for tf-keras / Keras 2 (tf.keras in
  TF <= 2.15), None for something that is not a Keras model."""
  for cls in type(model).__mro__:
    module = cls.__module__
    if cls.__name__ in ("Layer", "Model", "Operation"):
      if module.startswith("keras.src") or (
        module.startswith("keras.layers") and _keras_major() >= 3
      ):
        return KERAS3
      if module.startswith(("tf_keras", "keras")):
        return TF_KERAS
  return None


def _keras_major() -> int:
  try:
    import keras
  except ImportError:
    return 0
  return int(keras.__version__.split(".")[0])


def is_built(model: Any) -> bool:
  return bool(getattr(model, "built", True))


def unbuilt_layers(model: Any) -> list[str]:
  """Names of the layers (the model included) that have no variables yet."""
  out = []
  layers = getattr(model, "layers", None) or []
  for layer in [model, *layers]:
    if not getattr(layer, "built", True):
      out.append(getattr(layer, "name", type(layer).__name__))
  return out


def build(model: Any, input_shape) -> None:
  """Builds the model's variables from an input shape, as its first call would."""
  import tensorflow as tf

  shape = tuple(input_shape)
  if shape and shape[0] is not None:
    shape = (None,) + shape[1:] if len(shape) > 1 else shape
  dummy = tf.zeros([1 if d is None else d for d in shape])
  model(dummy)


def saved_weights_layout(model: Any, suffix: str) -> str:
  """Writes the model's weights as its own `save_weights` would, to a temporary
  file, and returns the path (the caller reads its inventory and removes it).
  This is how od_guard learns the layout `load_weights` will expect."""
  directory = tempfile.mkdtemp(prefix="od_guard_layout_")
  path = os.path.join(directory, "model" + suffix)
  model.save_weights(path)
  return path
