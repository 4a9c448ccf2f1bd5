"""The Keras adapter: facts about a live Keras model (Keras 3, tf-keras, or
Keras 2 as TF <= 2.15's `tf.keras`).

No matching logic lives here: which Keras a model belongs to (from its class's
package and that package's installed version, not from module paths: TF
2.15's `tf.keras` has its classes under `keras.src.*` and is Keras 2), whether
it is built, which layers are not, building it from an input shape, the layout
of the weight file its own `save_weights` would write, and which variable each
dataset of that layout holds.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from od_guard.restore.keras_layout import KERAS2
from od_guard.restore.keras_layout import KERAS3
from od_guard.restore.keras_layout import LEGACY_OPTIMIZER
from od_guard.restore.keras_layout import NEW_OPTIMIZER
from od_guard.restore.keras_layout import TF_KERAS

_BASES = ("Layer", "Model", "Operation")


def _package_version(package: str) -> str:
  module = sys.modules.get(package)
  version = getattr(module, "__version__", None)
  if version:
    return str(version)
  try:
    from importlib import metadata

    return metadata.version(package.replace("_", "-"))
  except Exception:  # pylint: disable=broad-except  # a version we cannot learn
    return ""


def keras_of(model: Any) -> tuple[str, str] | None:
  """(package, version) of the Keras that defines the model's base class:
  ('keras', '2.15.0') for TF 2.15's tf.keras, ('keras', '3.5.0'),
  ('tf_keras', '2.20.1'); None for something that is not a Keras model."""
  for cls in type(model).__mro__:
    if cls.__name__ in _BASES:
      package = cls.__module__.split(".", 1)[0]
      if package in ("keras", "tf_keras"):
        return package, _package_version(package)
  return None


def flavour(model: Any) -> str | None:
  """KERAS3 for a Keras 3 model, TF_KERAS for the tf-keras package, KERAS2 for
  the `keras` package at version 2 (tf.keras in TF <= 2.15), None for
  something that is not a Keras model."""
  found = keras_of(model)
  if found is None:
    return None
  package, version = found
  if package == "tf_keras":
    return TF_KERAS
  major = version.split(".", 1)[0]
  return KERAS3 if not major.isdigit() or int(major) >= 3 else KERAS2


def describe(model: Any) -> str:
  """'Keras 3.5.0', 'tf-keras 2.20.1', 'Keras 2.15.0 (tf.keras)' or '?'."""
  found = keras_of(model)
  if found is None:
    return "?"
  package, version = found
  if package == "tf_keras":
    return f"tf-keras {version}"
  return f"Keras {version}" + (" (tf.keras)" if flavour(model) == KERAS2 else "")


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


def optimizer_child(model: Any) -> str | None:
  """The name under which the model's checkpoint tracks its optimizer, if it
  has one (a compiled model); None otherwise."""
  optimizer = getattr(model, "optimizer", None)
  if optimizer is None:
    return None
  get = getattr(model, "_trackable_children", None)
  try:
    children = get() if get else {}
  except TypeError:
    children = get(save_type="checkpoint")
  for name, child in children.items():
    if child is optimizer:
      return name
  return None


def weight_paths(model: Any, keras3_file: bool) -> dict[str, Any] | None:
  """{dataset path in the model's own weights file: the variable it holds}.

  For a Keras 2 HDF5 file (tf-keras, Keras 2): `<layer name>/<weight name>` of
  every top-level layer, as `save_weights('x.h5')` writes them. For a Keras 3
  `.weights.h5`: the paths Keras 3's saving walk gives (`layers/dense/vars/0`).
  None where od_guard cannot learn them (a Keras 3 without that walk).
  """
  if not keras3_file:
    out = {}
    for layer in getattr(model, "layers", []):
      for w in list(layer.trainable_weights) + list(layer.non_trainable_weights):
        out[f"{layer.name}/{w.name}"] = w
    return out
  try:
    from keras.src.saving import saving_lib
  except ImportError:
    return None
  recorded: dict[str, dict] = {}

  class _Recorder(saving_lib.H5IOStore):  # only `make` is called by the walk
    def __init__(self):  # pylint: disable=super-init-not-called
      pass

    def __bool__(self):
      return True

    def make(self, path, metadata=None):
      del metadata
      store = recorded.setdefault(path, {})
      return store

  try:
    saving_lib._save_state(model, _Recorder(), None, "", set())  # pylint: disable=protected-access
  except Exception:  # pylint: disable=broad-except  # another Keras 3: say not checked
    return None
  out = {}
  for path, store in recorded.items():
    for index, variable in store.items():
      key = "/".join(p for p in (path, "vars", str(index)) if p)
      out[key] = variable
  return out


def optimizer_generation(optimizer: Any) -> str | None:
  """LEGACY_OPTIMIZER for tf.keras.optimizers.legacy.* (OptimizerV2),
  NEW_OPTIMIZER for TF 2.11+'s and Keras 3's optimizers, None for something
  else."""
  names = [(c.__name__, c.__module__) for c in type(optimizer).__mro__]
  if any(name == "OptimizerV2" for name, _ in names):
    return LEGACY_OPTIMIZER
  if any(
    name in ("Optimizer", "BaseOptimizer") and module.startswith(("keras", "tf_keras"))
    for name, module in names
  ):
    return NEW_OPTIMIZER
  return None
