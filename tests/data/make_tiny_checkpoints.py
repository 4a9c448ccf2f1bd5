"""Writes tests/data/tiny_checkpoints/: two small checkpoints saved by TensorFlow
itself, index and data shard, for the tests that run without TensorFlow and
need real tensor bytes (tests/remote_test.py uploads them to object storage).

- `detector/ckpt-1`: a small Keras detector (a conv backbone and two heads,
  3 classes) saved with `tf.train.Checkpoint(model=...)`, about 80 KB of float32
  weights in its data shard, and the `checkpoint` state file.
- `detector_5cls/ckpt-1`: the same model with a 5-class head, for `diff`.

Usage (an environment with TensorFlow, from the repository root):
  python tests/data/make_tiny_checkpoints.py
"""

from __future__ import annotations

import os
import pathlib
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
OUT = pathlib.Path(__file__).resolve().parent / "tiny_checkpoints"


def _model(tf, num_classes: int):
  tf.keras.utils.set_random_seed(7)
  inputs = tf.keras.Input((32, 32, 3))
  x = tf.keras.layers.Conv2D(16, 3, strides=2, name="stem_conv")(inputs)
  x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
  x = tf.keras.layers.Conv2D(32, 3, strides=2, name="block1_conv")(x)
  x = tf.keras.layers.Conv2D(48, 3, name="block2_conv")(x)
  features = tf.keras.layers.GlobalAveragePooling2D()(x)
  boxes = tf.keras.layers.Dense(4, name="box_head")(features)
  classes = tf.keras.layers.Dense(num_classes, name="class_head")(features)
  return tf.keras.Model(inputs, [boxes, classes], name="detector")


def main() -> None:
  import tensorflow as tf

  shutil.rmtree(OUT, ignore_errors=True)
  for name, num_classes in (("detector", 3), ("detector_5cls", 5)):
    model = _model(tf, num_classes)
    tf.train.Checkpoint(model=model).save(str(OUT / name / "ckpt"))
  for p in sorted(OUT.rglob("*")):
    if p.is_file():
      print(f"{p.relative_to(OUT.parent)}  {p.stat().st_size:,} bytes")


if __name__ == "__main__":
  main()
