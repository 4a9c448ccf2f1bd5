"""Issue 21: optimizer state is its own question. A compiled model does not
need the checkpoint's optimizer (tests/keras_trust_test.py); asked for it
(optimizer=True), lazily created slots are not missing, and a checkpoint of
the other optimizer generation (legacy, pre-2.11, against the new one) is
named, with stock Keras's outcome beside it."""

from __future__ import annotations

import numpy as np
import pytest

from od_guard.keras import guarded_restore
from od_guard.restore import policy as policy_lib

from conftest import keras_of


@pytest.fixture(params=["keras2", "tf_keras"])
def keras(request, tf):
  """The Keras 2 flavours, which have both optimizer generations."""
  return keras_of(request.param)


def _net(keras):
  inputs = keras.Input((4,))
  x = keras.layers.Dense(8, name="f")(inputs)
  return keras.Model(inputs, keras.layers.Dense(3, name="h")(x))


def _data():
  rng = np.random.default_rng(0)
  return rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")


def _adam(keras, legacy: bool):
  return keras.optimizers.legacy.Adam() if legacy else keras.optimizers.Adam()


def _resume_checkpoint(keras, tmp_path, legacy: bool) -> str:
  """A model trained one step and saved as Keras 2's save_weights(prefix)."""
  model = _net(keras)
  model.compile(optimizer=_adam(keras, legacy), loss="mse")
  model.fit(*_data(), epochs=1, verbose=0)
  prefix = str(tmp_path / ("legacy" if legacy else "new") / "ckpt")
  model.save_weights(prefix)
  return prefix


def _compiled(keras, legacy: bool):
  model = _net(keras)
  model.compile(optimizer=_adam(keras, legacy), loss="mse")
  return model


@pytest.mark.parametrize("flavour", ["keras2", "tf_keras", "keras3"])
def test_a_resume_with_lazily_created_slots_passes(flavour, tf, tmp_path):
  """Control: the checkpoint holds Adam's slots, the resumed model's optimizer
  creates them on its first step; the restore is asked for the optimizer."""
  keras = keras_of(flavour)
  source = _net(keras)
  source.compile(optimizer="adam", loss="mse")
  source.fit(*_data(), epochs=1, verbose=0)
  prefix = tf.train.Checkpoint(model=source).save(str(tmp_path / "resume" / "ckpt"))
  stock = _net(keras)
  stock.compile(optimizer="adam", loss="mse")
  tf.train.Checkpoint(model=stock).restore(prefix)  # stock: no error
  model = _net(keras)
  model.compile(optimizer="adam", loss="mse")
  report = guarded_restore.restore(model, prefix, optimizer=True, quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()
  assert "keras_optimizer_generation" not in report.codes()


@pytest.mark.parametrize("legacy", [False, True], ids=["new", "legacy"])
def test_one_optimizer_generation_used_consistently_passes(keras, tmp_path, legacy):
  prefix = _resume_checkpoint(keras, tmp_path, legacy)
  stock = _compiled(keras, legacy)
  stock.load_weights(prefix)
  stock.fit(*_data(), epochs=1, verbose=0)
  assert int(stock.optimizer.iterations.numpy()) == 2  # stock: the state resumed
  report = guarded_restore.restore(_compiled(keras, legacy), prefix, optimizer=True, quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()


def test_a_legacy_optimizer_checkpoint_into_the_new_optimizer_is_named(keras, tmp_path):
  """keras-team/keras-io#1426, zsylvester/segmenteverygrain#5: a checkpoint
  saved with the pre-2.11 optimizer, resumed under TF 2.11+'s: stock raises
  'You are trying to restore a checkpoint from a legacy Keras optimizer into a
  v2.11+ Optimizer'; od_guard named no cause (2 variables not restored)."""
  prefix = _resume_checkpoint(keras, tmp_path, legacy=True)
  with pytest.raises(ValueError, match="legacy .*optimizer into a v2.11\\+ Optimizer"):
    _compiled(keras, legacy=False).load_weights(prefix)  # stock
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(_compiled(keras, legacy=False), prefix, optimizer=True, quiet=True)
  report = e.value.report
  errors = [f.code for f in report.findings if f.severity == "error"]
  assert errors == ["keras_optimizer_generation"], report.codes()  # the rest explained by it
  f = report.finding("keras_optimizer_generation")
  assert "tf.keras.optimizers.legacy.Adam" in f.fix
  assert "auto_named_layers" not in report.codes() and "renamed_scopes" not in report.codes()
  # Fix 1, as proposed: the legacy optimizer.
  report = guarded_restore.restore(
    _compiled(keras, legacy=True), prefix, optimizer=True, quiet=True
  )
  assert report.verdict.decision == policy_lib.PASS
  # Fix 2, as proposed: the model only, fresh slots.
  report = guarded_restore.restore(_compiled(keras, legacy=False), prefix, quiet=True)
  assert report.verdict.decision == policy_lib.PASS


def test_a_new_optimizer_checkpoint_into_a_legacy_optimizer_is_named(keras, tmp_path):
  """The reverse: stock loads without a word and the legacy optimizer takes
  none of the state (its iterations restart)."""
  prefix = _resume_checkpoint(keras, tmp_path, legacy=False)
  stock = _compiled(keras, legacy=True)
  stock.load_weights(prefix)
  stock.fit(*_data(), epochs=1, verbose=0)
  assert int(stock.optimizer.iterations.numpy()) == 1  # stock: silent, the step count lost
  with pytest.raises(guarded_restore.RestoreGuardError) as e:
    guarded_restore.restore(_compiled(keras, legacy=True), prefix, optimizer=True, quiet=True)
  f = e.value.report.finding("keras_optimizer_generation")
  assert "(not .legacy)" in f.fix
  report = guarded_restore.restore(
    _compiled(keras, legacy=False), prefix, optimizer=True, quiet=True
  )
  assert report.verdict.decision == policy_lib.PASS


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
