"""Issue 21: the Keras guard blocks no correct run. Each control rebuilds a
setup that stock Keras loads, runs stock Keras's own loader on it in the same
test (and records that it loads), and shows the guard passes, in every Keras
flavour the environment has: Keras 2 as TF 2.15's tf.keras (classes under
keras.src.*), tf-keras, and Keras 3."""

from __future__ import annotations

import numpy as np
import pytest

from od_guard.keras import guarded_restore
from od_guard.keras import model_facts
from od_guard.restore import keras_layout
from od_guard.restore import policy as policy_lib

from conftest import keras_of

FLAVOURS = ["keras2", "tf_keras", "keras3"]
LEGACY = ("keras2", "tf_keras")


@pytest.fixture(params=FLAVOURS)
def flavoured(request):
  """(flavour name, Keras module)."""
  return request.param, keras_of(request.param)


@pytest.fixture(params=LEGACY)
def legacy(request):
  """(flavour name, Keras module) of the Keras 2 flavours (HDF5 .h5 and
  TF-format save_weights)."""
  return request.param, keras_of(request.param)


def _mlp(keras, names=("features", "head"), classes=3):
  inputs = keras.Input((4,))
  x = keras.layers.Dense(8, activation="relu", name=names[0])(inputs)
  return keras.Model(inputs, keras.layers.Dense(classes, name=names[1])(x))


def _data(classes=3):
  rng = np.random.default_rng(0)
  return rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, classes)).astype("float32")


def _trained(keras, optimizer="adam", **kwargs):
  model = _mlp(keras, **kwargs)
  model.compile(optimizer=optimizer, loss="mse")
  model.fit(*_data(kwargs.get("classes", 3)), epochs=1, verbose=0)
  return model


def _same_weights(a, b) -> bool:
  wa, wb = a.get_weights(), b.get_weights()
  return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def test_the_keras_of_a_model_is_told_from_its_package_version(flavoured):
  """TF 2.15's tf.keras has its classes under keras.src.* and is Keras 2."""
  name, keras = flavoured
  model = _mlp(keras)
  expected = {
    "keras2": keras_layout.KERAS2,
    "tf_keras": keras_layout.TF_KERAS,
    "keras3": keras_layout.KERAS3,
  }[name]
  assert model_facts.flavour(model) == expected
  assert model_facts.describe(model).startswith(
    {"keras2": "Keras 2.", "tf_keras": "tf-keras 2.", "keras3": "Keras 3."}[name]
  )
  if name == "keras2":
    assert type(model).__mro__[1].__module__.startswith("keras.src.")
    assert model_facts.describe(model).endswith("(tf.keras)")


def test_a_legacy_h5_that_keras_loads_by_name_passes(legacy, tmp_path):
  """Was: 'a keras2 hdf5 file cannot be loaded into a Keras 3 model' under
  TF 2.15's tf.keras."""
  _, keras = legacy
  saved = _trained(keras)
  path = str(tmp_path / "weights.h5")
  saved.save_weights(path)
  stock = _mlp(keras)
  stock.load_weights(path, by_name=True)  # stock: loads, by name
  assert _same_weights(stock, saved)
  model = _mlp(keras)
  report = guarded_restore.restore(model, path, quiet=True)
  assert report.verdict.decision == policy_lib.PASS
  assert "keras_file_flavour" not in report.codes()
  assert report.finding("restore_verified").title == "Verified: 4 weights hold the file's values."
  assert _same_weights(model, saved)


@pytest.mark.parametrize("compiled", [False, True], ids=["uncompiled", "compiled"])
def test_a_tf_format_save_weights_prefix_is_matched_as_load_weights_reads_it(
  legacy, tmp_path, compiled
):
  """Keras 2's model.save_weights(prefix) roots the checkpoint at the model
  (layer_with_weights-0/...): matched as model.load_weights reads it, not as
  tf.train.Checkpoint(model=...) would. Was: a rename map and 'the model is
  Keras 3', also on a correct resume with the same optimizer."""
  _, keras = legacy
  saved = _trained(keras)
  prefix = str(tmp_path / "tf_weights" / "ckpt")
  saved.save_weights(prefix)
  stock = _mlp(keras)
  if compiled:
    stock.compile(optimizer="adam", loss="mse")
  stock.load_weights(prefix).assert_existing_objects_matched()  # stock: loads
  assert _same_weights(stock, saved)
  model = _mlp(keras)
  if compiled:
    model.compile(optimizer="adam", loss="mse")
  report = guarded_restore.restore(model, prefix, quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()
  bad = {"renamed_scopes", "keras_layout_mismatch", "auto_named_layers", "tf_checkpoint_for_keras3"}
  assert not bad & set(report.codes())
  assert {b.key.split("/")[0] for b in report.restore.restored} == {
    "layer_with_weights-0",
    "layer_with_weights-1",
  }
  assert _same_weights(model, saved)


def test_a_compiled_model_takes_a_model_only_checkpoint(flavoured, tf, tmp_path):
  """The optimizer of a compiled model is not something a model-only
  checkpoint must supply (was: optimizer/_iterations and _learning_rate
  demanded, under Keras 3 and tf-keras alike)."""
  _, keras = flavoured
  source = _mlp(keras)
  prefix = tf.train.Checkpoint(model=source).save(str(tmp_path / "model_only" / "ckpt"))
  stock = _mlp(keras)
  stock.compile(optimizer="adam", loss="mse")
  tf.train.Checkpoint(model=stock).restore(prefix).expect_partial()  # stock: loads
  assert _same_weights(stock, source)
  for fitted in (False, True):
    model = _mlp(keras)
    model.compile(optimizer="adam", loss="mse")
    if fitted:  # the optimizer has built its slots
      model.fit(*_data(), epochs=1, verbose=0)
    report = guarded_restore.restore(model, prefix, quiet=True)
    assert report.verdict.decision == policy_lib.PASS, report.codes()
    assert "variables_not_restored" not in report.codes()
    assert _same_weights(model, source)


def test_a_compiled_model_takes_a_model_only_checkpoint_under_mirrored_strategy(
  flavoured, tf, tmp_path
):
  _, keras = flavoured
  source = _mlp(keras)
  prefix = tf.train.Checkpoint(model=source).save(str(tmp_path / "model_only" / "ckpt"))
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  with strategy.scope():
    model = _mlp(keras)
    model.compile(optimizer="adam", loss="mse")
  guard = _guard_class(keras)(prefix, quiet=True)
  model.fit(*_data(), epochs=1, verbose=0, callbacks=[guard])
  assert guard.report.verdict.decision == policy_lib.PASS, guard.report.codes()
  assert "restore_verified" in guard.report.codes()


def _guard_class(keras):
  from od_guard.keras import callbacks

  if keras.__name__ == "tf_keras":
    return callbacks.TfKerasRestoreGuard
  return callbacks.RestoreGuard


def test_the_exclude_proposed_for_a_keras_weights_file_works(flavoured, tmp_path):
  """A head swap from a Keras weights file: the guard proposes exclude=...,
  and retrying with exactly that passes (was: the same finding again)."""
  name, keras = flavoured
  saved = _trained(keras)
  path = str(tmp_path / ("w.weights.h5" if name == "keras3" else "w.h5"))
  saved.save_weights(path)
  # Stock's own way to skip the head: skip_mismatch (by_name with Keras 2).
  stock = _mlp(keras, classes=5)
  if name == "keras3":
    stock.load_weights(path, skip_mismatch=True)
  else:
    stock.load_weights(path, by_name=True, skip_mismatch=True)
  np.testing.assert_array_equal(stock.layers[1].kernel.numpy(), saved.layers[1].kernel.numpy())
  model = _mlp(keras, classes=5)
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(model, path, quiet=True)
  exclude = e.value.report.finding("head_shape_changed").data["exclude"]
  head_before = model.layers[2].kernel.numpy().copy()
  report = guarded_restore.restore(model, path, exclude=exclude, quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()
  assert report.finding("restore_verified").title == "Verified: 2 weights hold the file's values."
  np.testing.assert_array_equal(model.layers[1].kernel.numpy(), saved.layers[1].kernel.numpy())
  np.testing.assert_array_equal(model.layers[2].kernel.numpy(), head_before)


def test_a_keras_archive_loads_and_verifies_in_fit(tmp_path):
  """Was: an OSError from h5py opening the .keras zip, out of on_train_begin."""
  keras = keras_of("keras3")
  saved = _trained(keras)
  path = str(tmp_path / "model.keras")
  saved.save(path)
  stock = _mlp(keras)
  stock.load_weights(path)  # stock: loads
  assert _same_weights(stock, saved)
  model = _mlp(keras)
  model.compile(optimizer="adam", loss="mse")
  guard = _guard_class(keras)(path, quiet=True)
  model.fit(*_data(), epochs=1, verbose=0, callbacks=[guard])
  assert guard.report.verdict.decision == policy_lib.PASS
  assert guard.report.finding("restore_verified").title == (
    "Verified: 4 weights hold the file's values."
  )


def test_a_loader_error_the_prediction_missed_is_a_finding_not_a_traceback(legacy, tmp_path):
  """An .h5 whose layer_names lists a layer it has no group for: the metadata
  reads, Keras 2's load_weights raises KeyError. Out of fit, the guard stops
  with a finding (keras_load_raised), no raw KeyError from on_train_begin."""
  import h5py

  _, keras = legacy
  saved = _trained(keras)
  path = str(tmp_path / "w.h5")
  saved.save_weights(path)
  with h5py.File(path, "r+") as f:
    names = [n if isinstance(n, bytes) else n.encode() for n in f.attrs["layer_names"]]
    f.attrs["layer_names"] = np.array([*names, b"ghost"], dtype="S")
  with pytest.raises(KeyError, match="ghost"):
    _mlp(keras).load_weights(path)  # stock
  model = _mlp(keras)
  model.compile(optimizer="adam", loss="mse")
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    model.fit(*_data(), epochs=1, verbose=0, callbacks=[_guard_class(keras)(path, quiet=True)])
  f = e.value.report.finding("keras_load_raised")
  assert f.title == "load_weights raised KeyError although od_guard predicted a clean restore."
  assert "ghost" in f.detail


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
