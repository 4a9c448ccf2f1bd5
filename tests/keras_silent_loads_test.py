"""Issue 21: the silent loads of Keras 2 HDF5 files the guard names.

Each scenario rebuilds a public report in a few lines, runs stock Keras's
`load_weights` on it and records its outcome ("silent", with how many of the
file's arrays the model holds afterwards), then shows the guard's verdict and
cause, and applies the fix the guard proposes. Each has a correct setup beside
it that passes. Keras 2 flavours: TF 2.15's tf.keras and tf-keras."""

from __future__ import annotations

import numpy as np
import pytest

from od_guard.keras import guarded_restore
from od_guard.restore import policy as policy_lib

from conftest import keras3_available

LEGACY = ["keras2", "tf_keras"]


@pytest.fixture(params=LEGACY)
def keras(request, tf):
  if request.param == "tf_keras":
    import tf_keras

    return tf_keras
  if keras3_available():
    pytest.skip("Keras 2 as tf.keras is TF <= 2.15's (the odapi environment's)")
  return tf.keras


def _net(keras, names=(None, None, None), widths=(32, 32), classes=3):
  """Two hidden Dense layers (the 'backbone') and a head; None: auto-named."""
  inputs = keras.Input((16,))
  x = inputs
  for name, width in zip(names[:2], widths):
    x = keras.layers.Dense(width, activation="relu", name=name)(x)
  return keras.Model(inputs, keras.layers.Dense(classes, name=names[2])(x))


def _saved(keras, tmp_path, **kwargs):
  model = _net(keras, **kwargs)
  rng = np.random.default_rng(1)  # no zero biases: every array is told apart
  model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
  path = str(tmp_path / "released.h5")
  model.save_weights(path)
  return model, path


def _held(model, saved) -> int:
  """How many of the saved model's arrays the model holds (stock's outcome)."""
  mine = model.get_weights()
  return sum(any(np.array_equal(a, b) for a in mine) for b in saved.get_weights())


def _stock_by_name(keras, build, path, saved, **kwargs) -> int:
  model = build()
  model.load_weights(path, by_name=True, **kwargs)  # no error, no warning
  return _held(model, saved)


def _fails(model, path, code, **kwargs):
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(model, path, quiet=True, **kwargs)
  assert code in e.value.report.codes(), e.value.report.codes()
  return e.value.report.finding(code)


def test_old_layer_names_bind_nothing_by_name(keras, tmp_path):
  """keras-team/keras#9683: Xception's released weights use the old layer
  names (convolution2d_1 ...), the code names them block1_conv1 ...;
  load_weights(by_name=True) loads nothing without a word."""
  saved, path = _saved(keras, tmp_path, names=("convolution2d_1", "convolution2d_2", "dense_1"))
  new_names = ("block1_conv1", "block1_conv2", "predictions")
  assert _stock_by_name(keras, lambda: _net(keras, names=new_names), path, saved) == 0
  f = _fails(_net(keras, names=new_names), path, "keras_by_name_unbound", by_name=True)
  assert f.title.startswith("load_weights(by_name=True) binds 0 of 6 weights: 3 layers")
  assert f.data["layer_map"] == {
    "block1_conv1": "convolution2d_1",
    "block1_conv2": "convolution2d_2",
    "predictions": "dense_1",
  }
  assert "by_name=False" in f.fix
  # Fix 1, as proposed: load by topology.
  model = _net(keras, names=new_names)
  report = guarded_restore.restore(model, path, by_name=False, quiet=True)
  assert report.verdict.decision == policy_lib.PASS
  assert _held(model, saved) == 6
  # Fix 2, as proposed: the file's names (data.layer_map), by name.
  renamed = tuple(f.data["layer_map"][n] for n in new_names)
  model = _net(keras, names=renamed)
  report = guarded_restore.restore(model, path, by_name=True, quiet=True)
  assert report.verdict.decision == policy_lib.PASS
  assert report.finding("restore_verified").title == "Verified: 6 weights hold the file's values."
  assert _held(model, saved) == 6


def test_leaked_name_counters_in_released_weights_bind_nothing(keras, tmp_path):
  """leondgarse/keras_efficientnet_v2#2: the weights were converted after
  another model in the same session, so their layers are dense_3, dense_4 ...
  where a fresh model has dense, dense_1 ...; by_name loads nothing."""
  keras.backend.clear_session()
  _net(keras)  # the model converted first
  saved, path = _saved(keras, tmp_path)
  keras.backend.clear_session()
  fresh = lambda: (keras.backend.clear_session(), _net(keras))[1]  # noqa: E731
  assert _stock_by_name(keras, fresh, path, saved) == 0
  f = _fails(fresh(), path, "keras_by_name_unbound", by_name=True)
  assert len(f.data["layer_map"]) == 3
  assert all(v.startswith("dense_") for v in f.data["layer_map"].values())
  report = guarded_restore.restore(fresh(), path, quiet=True)  # by topology, as proposed
  assert report.verdict.decision == policy_lib.PASS


def test_a_second_model_in_one_script_gets_suffixed_names(keras, tmp_path):
  """qqwweee/keras-yolo3#32: the model was built twice in the training
  script; the second one's layers are auto-suffixed and by_name loads
  nothing into it."""
  keras.backend.clear_session()
  saved, path = _saved(keras, tmp_path)
  keras.backend.clear_session()
  _net(keras)  # the first build in the script
  second = _net(keras)
  second.load_weights(path, by_name=True)  # stock: silent
  assert _held(second, saved) == 0
  keras.backend.clear_session()
  _net(keras)
  f = _fails(_net(keras), path, "keras_by_name_unbound", by_name=True)
  assert f.data["layer_map"]  # the suffixed layers pair with the file's, in order
  assert "binds 0 of 6" in f.title


def test_a_head_swap_by_name_passes(keras, tmp_path):
  """Control: by_name with a new head under a new name is by_name's own use."""
  saved, path = _saved(keras, tmp_path, names=("f1", "f2", "head"))
  model = _net(keras, names=("f1", "f2", "new_head"), classes=5)
  stock = _net(keras, names=("f1", "f2", "new_head"), classes=5)
  stock.load_weights(path, by_name=True)
  assert _held(stock, saved) == 4  # stock: the backbone
  report = guarded_restore.restore(model, path, by_name=True, quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()
  assert report.finding("restore_verified").title == "Verified: 4 weights hold the file's values."
  assert _held(model, saved) == 4


def test_a_renamed_head_of_the_same_width_is_named_and_exclude_says_it_is_new(keras, tmp_path):
  """A head renamed but of the saved head's shapes: by_name leaves it random
  while the file holds a head that fits. Named; the proposed exclude (train it
  afresh, on purpose) passes and loads the backbone."""
  saved, path = _saved(keras, tmp_path, names=("f1", "f2", "head"))
  build = lambda: _net(keras, names=("f1", "f2", "new_head"))  # noqa: E731
  assert _stock_by_name(keras, build, path, saved) == 4  # stock: silent, the head random
  f = _fails(build(), path, "keras_by_name_unbound", by_name=True)
  assert f.data["layer_map"] == {"new_head": "head"}
  assert f.data["exclude"] == ["new_head"]
  model = build()
  report = guarded_restore.restore(model, path, by_name=True, exclude=f.data["exclude"], quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()
  assert report.finding("restore_verified").title == "Verified: 4 weights hold the file's values."
  assert _held(model, saved) == 4


def test_a_changed_head_under_skip_mismatch_passes(keras, tmp_path):
  """Control: skip_mismatch skipping a head whose width changed."""
  saved, path = _saved(keras, tmp_path, names=("f1", "f2", "head"))
  build = lambda: _net(keras, names=("f1", "f2", "head"), classes=5)  # noqa: E731
  assert _stock_by_name(keras, build, path, saved, skip_mismatch=True) == 4
  model = build()
  report = guarded_restore.restore(model, path, by_name=True, skip_mismatch=True, quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()
  assert _held(model, saved) == 4


def test_skip_mismatch_hiding_a_complete_miss(keras, tmp_path):
  """qqwweee/keras-yolo3#552: skip_mismatch 'loads' weights of another
  layout (every layer's shapes differ): a warning per layer, nothing loaded."""
  saved, path = _saved(keras, tmp_path, names=("f1", "f2", "head"), widths=(64, 64))
  build = lambda: _net(keras, names=("f1", "f2", "head"))  # noqa: E731
  # stock: 1 of 6 (the head's bias, the one array whose shape is the same)
  assert _stock_by_name(keras, build, path, saved, skip_mismatch=True) == 1
  f = _fails(build(), path, "keras_skip_mismatch_misses", by_name=True, skip_mismatch=True)
  assert f.data["skipped"] == ["f1", "f2", "head"]
  # The fix: the weights of the model's own variant.
  (tmp_path / "own").mkdir()
  own, own_path = _saved(keras, tmp_path / "own", names=("f1", "f2", "head"))
  model = build()
  report = guarded_restore.restore(model, own_path, by_name=True, skip_mismatch=True, quiet=True)
  assert report.verdict.decision == policy_lib.PASS
  assert _held(model, own) == 6


def test_by_name_for_a_file_kind_it_does_not_apply_to_is_refused(tf, tmp_path):
  import tf_keras

  from od_guard import errors

  model = _net(tf_keras)
  prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  with pytest.raises(errors.UsageError, match="apply to Keras 2 HDF5"):
    guarded_restore.restore(_net(tf_keras), prefix, by_name=True, quiet=True)


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
