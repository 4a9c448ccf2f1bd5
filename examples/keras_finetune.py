"""Fine-tuning a Keras model with od_guard's RestoreGuard (modern env, < 1 min on CPU).

1. "Pretrains" a classifier: a keras.applications MobileNetV2 backbone
   (weights=None, 64x64 inputs) plus a 5-class head; saves a TF checkpoint.
2. Fine-tunes it for 10 classes: the guard sees the head changed width and
   stops before the first batch; with exclude=["model/head"] the backbone
   restores (verified), the new head trains from scratch.
3. A rebuilt variant whose attributes were renamed (encoder/classifier): a plain
   restore would leave it random; the guard stops before the first batch and
   proposes the rename map.

Usage: python examples/keras_finetune.py [--out keras_demo_out]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="keras_demo_out")
  args = parser.parse_args()
  t0 = time.time()
  import keras
  import numpy as np
  import tensorflow as tf

  from od_guard.keras import callbacks
  from od_guard.keras import guarded_restore

  class Classifier(keras.Model):
    def __init__(self, classes: int, backbone: str = "backbone", head: str = "head"):
      super().__init__()
      self._names = (backbone, head)
      setattr(
        self,
        backbone,
        keras.applications.MobileNetV2(
          input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
        ),
      )
      setattr(self, head, keras.layers.Dense(classes))

    def call(self, x):
      return getattr(self, self._names[1])(getattr(self, self._names[0])(x))

  rng = np.random.default_rng(0)

  def data(classes):
    x = rng.normal(size=(8, 64, 64, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, classes, 8), classes)
    return x, y

  print("=== 1. Pretraining a MobileNetV2 classifier (5 classes) and saving it", flush=True)
  pretrained = Classifier(5)
  pretrained.compile(optimizer="adam", loss="categorical_crossentropy")
  pretrained.fit(*data(5), epochs=1, verbose=0)
  prefix = tf.train.Checkpoint(model=pretrained).save(os.path.join(args.out, "pretrained", "ckpt"))
  print(f"saved {prefix}")

  def fit_guarded(model, classes, **guard_args):
    """One epoch of `model.fit`, the restore of `prefix` guarded."""
    guard = callbacks.RestoreGuard(prefix, input_shape=(None, 64, 64, 3), **guard_args)
    return model.fit(*data(classes), epochs=1, verbose=0, callbacks=[guard])

  def stopped(model, classes, mistake):
    """The report with which the guard stops `model` before its first batch."""
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    try:
      fit_guarded(model, classes)
    except guarded_restore.RestoreGuardError as e:
      return e.report
    print(f"UNEXPECTED: {mistake} was not caught")
    return None

  print("\n=== 2. Fine-tuning for 10 classes", flush=True)
  model = Classifier(10)
  report = stopped(model, 10, "the changed head")
  if report is None:
    return 1
  exclude = report.finding("head_shape_changed").data["exclude"]
  print(f"-> stopped before the first batch; retrying with exclude={exclude}\n", flush=True)
  history = fit_guarded(model, 10, exclude=exclude, log_dir=os.path.join(args.out, "logs"))
  print(f"-> trained: loss {history.history['loss'][-1]:.3f}")

  print("\n=== 3. A rebuilt variant with renamed attributes (encoder / classifier)", flush=True)
  report = stopped(Classifier(5, backbone="encoder", head="classifier"), 5, "the renamed model")
  if report is None:
    return 1
  renames = report.finding("renamed_scopes").data["renames"]
  print(
    "-> stopped before the first batch; proposed rename map: "
    + ", ".join(f"{r['old']} -> {r['new']}" for r in renames)
  )

  print(
    f"\nDone in {time.time() - t0:.0f} s. TensorBoard: tensorboard --logdir "
    f"{os.path.join(args.out, 'logs')}"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
