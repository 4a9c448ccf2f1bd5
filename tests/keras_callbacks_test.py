"""The Keras callback classes: real classes, one per module, found where they
are defined, that check their arguments when they are made (Keras 3 / Keras 2
and tf-keras, in both environments)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import od_guard
from od_guard import errors

from conftest import REPO

# (name in od_guard.keras, module that defines it, Keras package of its base)
CLASSES = [
  ("RestoreGuard", "od_guard.keras.callbacks", "keras"),
  ("TfKerasRestoreGuard", "od_guard.keras.tf_keras_callbacks", "tf_keras"),
  ("NamingGuard", "od_guard.keras.naming_callbacks", "keras"),
  ("TfKerasNamingGuard", "od_guard.keras.tf_keras_naming_callbacks", "tf_keras"),
]
RESTORE_GUARDS = ["RestoreGuard", "TfKerasRestoreGuard"]
NAMING_GUARDS = ["NamingGuard", "TfKerasNamingGuard"]


@pytest.mark.parametrize("name,module,package", CLASSES, ids=[c[0] for c in CLASSES])
def test_each_callback_is_a_class_of_its_own_module(name, module, package):
  import importlib

  cls = getattr(od_guard.keras, name)
  base = importlib.import_module(package).callbacks.Callback
  assert (cls.__name__, cls.__module__) == (name, module)
  assert getattr(importlib.import_module(module), name) is cls
  assert issubclass(cls, base)


def test_the_modules_before_the_split_still_serve_the_tf_keras_classes():
  from od_guard.keras import callbacks
  from od_guard.keras import naming_callbacks

  assert callbacks.TfKerasRestoreGuard is od_guard.keras.TfKerasRestoreGuard
  assert naming_callbacks.TfKerasNamingGuard is od_guard.keras.TfKerasNamingGuard


def test_importing_od_guard_keras_imports_no_keras():
  code = (
    "import sys, od_guard, od_guard.keras\n"
    "print(sorted(m for m in ('keras', 'tf_keras', 'tensorflow') if m in sys.modules))\n"
  )
  r = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
  )
  assert (r.returncode, r.stdout.strip()) == (0, "[]"), r.stderr


@pytest.mark.parametrize("name", NAMING_GUARDS)
def test_naming_guard_refuses_an_unknown_mode(name, tmp_path):
  with pytest.raises(errors.UsageError) as e:
    getattr(od_guard.keras, name)(str(tmp_path), mode="strict")
  assert str(e.value) == (
    "Unknown naming mode 'strict'.\nReceived: mode='strict'\nFix: Use one of: warn, error."
  )


@pytest.mark.parametrize("name", RESTORE_GUARDS)
def test_restore_guard_refuses_exclude_given_as_one_string(name):
  with pytest.raises(errors.UsageError) as e:
    getattr(od_guard.keras, name)("ckpt", exclude="model/head")
  assert str(e.value) == (
    "Argument `exclude` must be a list of strings, not a single string.\n"
    "Received: exclude='model/head'\n"
    "Fix: Wrap it in a list: exclude=['model/head']."
  )


@pytest.mark.parametrize("name", RESTORE_GUARDS)
@pytest.mark.parametrize(
  "kwargs,received",
  [
    ({"checkpoint": ""}, "checkpoint=''"),
    ({"checkpoint": "ckpt", "policy": "strict"}, "policy='strict'"),
    ({"checkpoint": "ckpt", "input_shape": (None, 0, 3)}, "input_shape=(None, 0, 3)"),
    ({"checkpoint": "ckpt", "input_shape": "64x64"}, "input_shape='64x64'"),
    ({"checkpoint": "ckpt", "log_dir": 3}, "log_dir=3"),
  ],
  ids=["empty_checkpoint", "policy_name", "zero_dimension", "shape_string", "log_dir_number"],
)
def test_restore_guard_names_the_wrong_argument(name, kwargs, received):
  with pytest.raises(errors.UsageError) as e:
    getattr(od_guard.keras, name)(**kwargs)
  assert e.value.received == received


@pytest.mark.parametrize("name", RESTORE_GUARDS)
def test_restore_guard_keeps_valid_arguments(name, tmp_path):
  import pathlib

  guard = getattr(od_guard.keras, name)(
    pathlib.Path(tmp_path / "ckpt"),
    policy=od_guard.policy("strict"),
    input_shape=[None, 4],
    exclude=["model/head"],
  )
  assert (guard.checkpoint, guard.input_shape, guard.exclude, guard.policy.name) == (
    str(tmp_path / "ckpt"),
    (None, 4),
    ("model/head",),
    "strict",
  )


@pytest.mark.parametrize("name", NAMING_GUARDS)
def test_naming_guard_defaults_to_the_keras_preset(name, tmp_path):
  guard = getattr(od_guard.keras, name)(tmp_path, mode="warn")
  assert (guard.directory, guard.mode, guard.rules.name) == (str(tmp_path), "warn", "keras")


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
