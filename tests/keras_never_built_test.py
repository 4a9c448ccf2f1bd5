"""Issue 21: layers that call() skips never build, and their checkpoint
values wait unrestored (keras-team/keras#18823: `if i < 2: continue` in a
subclassed model's call). Stock: assert_existing_objects_matched() passes
without a word. The guard names the layers; a control beside it passes."""

from __future__ import annotations

import numpy as np
import pytest

from od_guard.keras import guarded_restore
from od_guard.restore import policy as policy_lib

from conftest import keras_of


@pytest.fixture(params=["keras2", "tf_keras", "keras3"])
def keras(request, tf):
  return keras_of(request.param)


def _net(keras, skip: bool):
  class Net(keras.Model):
    def __init__(self):
      super().__init__()
      for i in range(3):  # attributes: a list of layers is not tracked by Keras 3
        setattr(self, f"block{i}", keras.layers.Dense(8, name=f"block{i}"))
      self.head = keras.layers.Dense(3, name="head")

    @property
    def blocks(self):
      return [self.block0, self.block1, self.block2]

    def call(self, x):
      for i, block in enumerate(self.blocks):
        if skip and i < 1:  # as in the report: the first blocks skipped
          continue
        x = block(x)
      return self.head(x)

  model = Net()
  model(np.ones((1, 8), "float32"))
  return model


def _checkpoint(keras, tf, tmp_path):
  return tf.train.Checkpoint(model=_net(keras, skip=False)).save(str(tmp_path / "full" / "ckpt"))


def test_a_layer_call_skips_is_named(keras, tf, tmp_path):
  prefix = _checkpoint(keras, tf, tmp_path)
  stock = _net(keras, skip=True)
  tf.train.Checkpoint(model=stock).restore(prefix).assert_existing_objects_matched()  # silent
  assert not stock.blocks[0].built
  report = guarded_restore.restore(_net(keras, skip=True), prefix, quiet=True)
  assert report.verdict.decision == policy_lib.WARN
  f = report.finding("keras_layers_never_built")
  assert f.data["layers"] == ["block0"]
  assert "block0: 2 checkpoint values wait for it" in f.detail
  # The fix, as proposed: build the layer before restoring.
  model = _net(keras, skip=True)
  model.blocks[0].build((None, 8))
  report = guarded_restore.restore(model, prefix, quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()
  assert "keras_layers_never_built" not in report.codes()
  np.testing.assert_array_equal(model.blocks[0].kernel.numpy(), _held(tf, prefix, "block0"))


def _held(tf, prefix, path):
  return tf.train.load_checkpoint(prefix).get_tensor(
    next(
      k
      for k, _ in tf.train.list_variables(prefix)
      if k.startswith(f"model/{path}/") and "kernel" in k
    )
  )


def test_control_every_layer_built_passes(keras, tf, tmp_path):
  prefix = _checkpoint(keras, tf, tmp_path)
  report = guarded_restore.restore(_net(keras, skip=False), prefix, quiet=True)
  assert report.verdict.decision == policy_lib.PASS, report.codes()
  assert "keras_layers_never_built" not in report.codes()


if __name__ == "__main__":
  import sys

  sys.exit(pytest.main([__file__, "-q"]))
