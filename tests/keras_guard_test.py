"""The Keras restore guard: callbacks for model.fit and the custom-loop API,
under Keras 3 (modern environment) and tf-keras (both environments)."""

from __future__ import annotations

import numpy as np
import pytest

from od_guard.keras import guarded_restore
from od_guard.restore import policy as policy_lib

from conftest import keras3_available

FLAVOURS = ["keras3", "tf_keras"]


@pytest.fixture(params=FLAVOURS)
def kr(request):
  """(keras module, RestoreGuard class) of one Keras flavour."""
  from od_guard.keras import callbacks

  if request.param == "keras3":
    if not keras3_available():
      pytest.skip("Keras 3 is the modern environment's")
    import keras

    return keras, callbacks.RestoreGuard
  import tf_keras

  return tf_keras, callbacks.TfKerasRestoreGuard


class Net:
  """A tiny subclassed model: a feature layer and a classifier head, under
  attribute names chosen by the test (they become checkpoint paths)."""

  @staticmethod
  def make(keras, *, head="classifier", classes=3, features="features"):
    class TinyNet(keras.Model):
      def __init__(self):
        super().__init__()
        setattr(self, features, keras.layers.Dense(8, activation="relu"))
        setattr(self, head, keras.layers.Dense(classes))
        self._names = (features, head)

      def call(self, x):
        return getattr(self, self._names[1])(getattr(self, self._names[0])(x))

    return TinyNet()


def _data(classes=3):
  rng = np.random.default_rng(0)
  return rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, classes)).astype("float32")


def _saved(tf, keras, tmp_path, **kwargs):
  """A model trained one step and saved as a TF object-based checkpoint."""
  model = Net.make(keras, **kwargs)
  x, y = _data(kwargs.get("classes", 3))
  model.compile(optimizer="sgd", loss="mse")
  model.fit(x, y, epochs=1, verbose=0)
  prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "saved" / "ckpt"))
  return model, prefix


def _counter(keras):
  class Counter(keras.callbacks.Callback):
    batches = 0

    def on_train_batch_begin(self, batch, logs=None):
      Counter.batches += 1

  Counter.batches = 0
  return Counter


def _compiled(keras):
  """A fresh, compiled, unbuilt Net and data to fit it on."""
  model = Net.make(keras)
  model.compile(optimizer="sgd", loss="mse")
  return (model, *_data())


def test_good_restore_passes_and_verifies(tf, kr, tmp_path):
  keras, Guard = kr
  saved, prefix = _saved(tf, keras, tmp_path)
  model, x, y = _compiled(keras)
  guard = Guard(prefix, input_shape=(None, 4), quiet=True)
  expected = saved.features.kernel.numpy()
  model.fit(x, y, epochs=1, verbose=0, callbacks=[guard])
  assert guard.report.verdict.decision == policy_lib.PASS
  restored = {b.path.replace("/_kernel", "/kernel") for b in guard.report.restore.restored}
  assert {"model/features/kernel", "model/features/bias", "model/classifier/bias"} <= restored
  assert guard.report.finding("restore_verified").title.startswith(
    f"Verified: {len(restored)} variables hold the checkpoint's values"
  )
  # One SGD step moved the restored values a little, not back to random.
  assert np.allclose(model.features.kernel.numpy(), expected, atol=0.05)


def test_plain_restore_silently_leaves_a_layer_random_where_the_guard_stops(tf, kr, tmp_path):
  """The deferred-restore trap: an unbuilt model restores nothing now, the
  assertion passes vacuously, and the renamed head stays random after fit."""
  keras, Guard = kr
  saved, prefix = _saved(tf, keras, tmp_path, head="classifier")
  x, y = _data()
  # Plain TF: no error anywhere, the head is random.
  plain = Net.make(keras, head="head")
  tf.train.Checkpoint(model=plain).restore(prefix).assert_existing_objects_matched()
  plain.compile(optimizer="sgd", loss="mse")
  plain.fit(x[:1], y[:1], epochs=1, verbose=0)  # builds; deferred values land (tf-keras)
  assert not np.allclose(plain.head.kernel.numpy(), saved.classifier.kernel.numpy(), atol=0.1)
  features_restored = np.allclose(
    plain.features.kernel.numpy(), saved.features.kernel.numpy(), atol=0.1
  )
  # tf-keras applies the deferred values to the layers whose names match;
  # Keras 3 layers take no deferred restore at all: everything stays random.
  assert features_restored == (keras.__name__ == "tf_keras" or not keras3_available())
  # The guard: reports it and stops before the first batch.
  guarded = Net.make(keras, head="head")
  guarded.compile(optimizer="sgd", loss="mse")
  counter = _counter(keras)
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded.fit(
      x,
      y,
      epochs=1,
      verbose=0,
      callbacks=[Guard(prefix, input_shape=(None, 4), quiet=True), counter()],
    )
  assert counter.batches == 0
  codes = e.value.report.codes()
  assert "renamed_scopes" in codes
  renames = e.value.report.finding("renamed_scopes").data["renames"]
  assert renames == [{"old": "model/classifier/", "new": "model/head/", "count": 2}]


def test_unbuilt_model_is_the_deferred_restore_trap(tf, kr, tmp_path):
  keras, _ = kr
  _, prefix = _saved(tf, keras, tmp_path)
  model = Net.make(keras)
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(model, prefix, quiet=True)
  f = e.value.report.finding("deferred_restore")
  pending = len(e.value.report.checkpoint.of_kind("model"))
  assert pending >= 4  # the 4 layer values, and the optimizer state Keras tracks
  assert f.title.startswith(f"The model is not built: {pending} checkpoint values would wait")
  assert "input_shape=" in f.fix
  assert not model.built  # nothing was touched


def test_head_width_change_is_explained_and_can_be_excluded(tf, kr, tmp_path):
  keras, _ = kr
  saved, prefix = _saved(tf, keras, tmp_path, classes=3)
  model = Net.make(keras, classes=5)
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(model, prefix, input_shape=(None, 4), quiet=True)
  f = e.value.report.finding("head_shape_changed")
  assert f.data["exclude"] == ["model/classifier"]
  report = guarded_restore.restore(model, prefix, exclude=f.data["exclude"], quiet=True)
  assert report.verdict.decision == policy_lib.PASS
  np.testing.assert_array_equal(model.features.kernel.numpy(), saved.features.kernel.numpy())
  assert model.classifier.kernel.shape[-1] == 5


def test_keras_weights_file_round_trip(tf, kr, tmp_path):
  keras, _ = kr
  x, y = _data()
  inputs = keras.Input((4,))
  outputs = keras.layers.Dense(3, name="head")(keras.layers.Dense(8, name="features")(inputs))
  saved = keras.Model(inputs, outputs)
  suffix = ".weights.h5" if keras3_available() and keras.__name__ == "keras" else ".h5"
  path = str(tmp_path / f"model{suffix}")
  saved.save_weights(path)
  inputs = keras.Input((4,))
  outputs = keras.layers.Dense(3, name="out")(keras.layers.Dense(8, name="feat")(inputs))
  model = keras.Model(inputs, outputs)
  report = guarded_restore.restore(model, path, quiet=True)
  assert report.verdict.decision == policy_lib.PASS
  assert report.finding("restore_verified").title == "Verified: 4 weights hold the file's values."
  for a, b in zip(model.get_weights(), saved.get_weights()):
    np.testing.assert_array_equal(a, b)
  wider = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Dense(8)(inputs)))
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(wider, path, quiet=True)
  assert (
    "shape_mismatch" in e.value.report.codes() or "head_shape_changed" in e.value.report.codes()
  )


def test_tf_checkpoint_for_keras3_model_says_what_load_weights_would_do(tf, tmp_path):
  if not keras3_available():
    pytest.skip("Keras 3 is the modern environment's")
  import keras

  _, prefix = _saved(tf, keras, tmp_path)
  model = Net.make(keras)
  report = guarded_restore.restore(model, prefix, input_shape=(None, 4), quiet=True)
  f = report.finding("tf_checkpoint_for_keras3")
  assert "File format not supported" in f.stock_outcome
  with pytest.raises(ValueError, match="File format not supported"):
    model.load_weights(prefix)  # what od_guard said Keras 3 does


def test_keras3_checkpoint_into_tf_keras_model_is_a_layout_mismatch(tf, tmp_path):
  if not keras3_available():
    pytest.skip("needs both Keras 3 and tf-keras")
  import keras
  import tf_keras

  inputs = keras.Input((4,))
  k3 = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(8)(inputs)))
  prefix = tf.train.Checkpoint(model=k3).save(str(tmp_path / "k3" / "ckpt"))
  inputs = tf_keras.Input((4,))
  tk = tf_keras.Model(inputs, tf_keras.layers.Dense(3)(tf_keras.layers.Dense(8)(inputs)))
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(tk, prefix, quiet=True)
  f = e.value.report.finding("keras_layout_mismatch")
  assert f.title.startswith("The checkpoint has Keras 3's layout; the model is tf-keras")
  assert len(f.data["key_map"]) == 4  # every variable pairs up, layer by layer


def test_auto_named_layers_get_a_key_map(tf, tmp_path):
  def net(names):
    m = tf.Module()
    for name, shape in zip(names, ([4, 8], [8], [8, 3], [3])):
      layer = getattr(m, name.split("/")[0], None) or tf.Module()
      setattr(layer, name.split("/")[1], tf.Variable(tf.random.normal(shape)))
      setattr(m, name.split("/")[0], layer)
    return m

  saved = net(["dense_3/kernel", "dense_3/bias", "dense_4/kernel", "dense_4/bias"])
  prefix = tf.train.Checkpoint(model=saved).save(str(tmp_path / "auto" / "ckpt"))
  model = net(["dense_7/kernel", "dense_7/bias", "dense_8/kernel", "dense_8/bias"])
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore({"model": model}, prefix, quiet=True)
  f = e.value.report.finding("auto_named_layers")
  assert (
    f.data["key_map"]["model/dense_3/kernel/.ATTRIBUTES/VARIABLE_VALUE"]
    == "model/dense_7/kernel/.ATTRIBUTES/VARIABLE_VALUE"
  )
  assert "model/dense_4 -> model/dense_8" in f.detail


def test_report_goes_to_tensorboard_beside_keras(tf, kr, tmp_path):
  keras, Guard = kr
  _, prefix = _saved(tf, keras, tmp_path)
  model, x, y = _compiled(keras)
  log_dir = str(tmp_path / "logs")
  model.fit(
    x,
    y,
    epochs=1,
    verbose=0,
    callbacks=[
      Guard(
        prefix,
        input_shape=(None, 4),
        log_dir=log_dir,
        quiet=True,
        report_path=str(tmp_path / "report.json"),
      ),
      keras.callbacks.TensorBoard(log_dir),
    ],
  )
  from tensorboard.backend.event_processing import event_multiplexer

  mux = event_multiplexer.EventMultiplexer()
  mux.AddRunsFromDirectory(log_dir)
  mux.Reload()
  tags = {(run, tag) for run, kinds in mux.Runs().items() for tag in kinds["tensors"]}
  assert {
    ("train", "od_guard/verdict"),
    ("train", "od_guard/coverage/total"),
    ("train", "od_guard/report"),
  } <= tags
  assert any(run == "train" and "loss" in tag for run, tag in tags)  # Keras' own
  assert (tmp_path / "report.json").exists()


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
