"""Tiny Object Detection API set-ups: shrunk zoo configs, synthetic TFRecords,
models built and saved by the OD API itself.

A zoo config is kept as published except for what makes it small and local:
image size, number of classes, batch size, steps, input paths, and bfloat16
(TPU-only) turned off. Config handling needs only protobuf; building a model or
writing TFRecords imports TensorFlow and the OD API (with `odapi_compat`).
"""

from __future__ import annotations

import dataclasses
import os

from od_guard.checkpoint import fileio


def _pipeline_pb2():
  from object_detection.protos import pipeline_pb2  # protobuf only, no TF.

  return pipeline_pb2


def load_pipeline_config(path: str):
  """Parses a pipeline.config strictly with the OD API's own protos."""
  from google.protobuf import text_format

  config = _pipeline_pb2().TrainEvalPipelineConfig()
  with open(path, encoding="utf-8") as f:
    text_format.Merge(f.read(), config)
  return config


def meta_architecture(config) -> str:
  return config.model.WhichOneof("model")


def shrink_pipeline_config(
  config,
  *,
  image_size: int = 64,
  num_classes: int = 3,
  batch_size: int = 2,
  num_steps: int = 2,
  train_record: str | None = None,
  label_map: str | None = None,
  fine_tune_checkpoint: str | None = None,
  fine_tune_checkpoint_type: str | None = None,
):
  """Returns a copy of `config` made small enough to build and train on a CPU."""
  small = _pipeline_pb2().TrainEvalPipelineConfig()
  small.CopyFrom(config)
  arch = getattr(small.model, meta_architecture(small))
  arch.num_classes = num_classes
  arch.image_resizer.Clear()
  arch.image_resizer.fixed_shape_resizer.height = image_size
  arch.image_resizer.fixed_shape_resizer.width = image_size
  if meta_architecture(small) == "faster_rcnn":
    arch.first_stage_max_proposals = min(arch.first_stage_max_proposals or 300, 16)
    arch.second_stage_batch_size = min(arch.second_stage_batch_size or 64, 8)
  train = small.train_config
  train.batch_size = batch_size
  train.num_steps = num_steps
  train.use_bfloat16 = False
  del train.data_augmentation_options[:]
  if train.HasField("optimizer"):
    # Zoo schedules warm up over thousands of steps; a constant rate keeps
    # a two-step run meaningful.
    opt_name = train.optimizer.WhichOneof("optimizer")
    opt = getattr(train.optimizer, opt_name)
    opt.learning_rate.Clear()
    opt.learning_rate.constant_learning_rate.learning_rate = 0.001
  if fine_tune_checkpoint is not None:
    train.fine_tune_checkpoint = fine_tune_checkpoint
  if fine_tune_checkpoint_type is not None:
    train.fine_tune_checkpoint_type = fine_tune_checkpoint_type
  for reader in [small.train_input_reader, *small.eval_input_reader]:
    if label_map is not None:
      reader.label_map_path = label_map
    if train_record is not None:
      reader.tf_record_input_reader.ClearField("input_path")
      reader.tf_record_input_reader.input_path.append(train_record)
  return small


def write_pipeline_config(config, path: str) -> str:
  from google.protobuf import text_format

  fileio.atomic_write_text(path, text_format.MessageToString(config))
  return path


def localize_config(
  source: str,
  destination: str,
  *,
  record: str,
  label_map: str,
  checkpoint: str,
  checkpoint_type: str | None = None,
) -> str:
  """Copies a config, pointing it at local data and a fine-tune checkpoint."""
  config = load_pipeline_config(source)
  config.train_config.fine_tune_checkpoint = checkpoint
  if checkpoint_type is not None:
    config.train_config.fine_tune_checkpoint_type = checkpoint_type
  for reader in [config.train_input_reader, *config.eval_input_reader]:
    reader.label_map_path = label_map
    reader.tf_record_input_reader.ClearField("input_path")
    reader.tf_record_input_reader.input_path.append(record)
  return write_pipeline_config(config, destination)


def write_label_map(path: str, num_classes: int) -> str:
  items = "".join(
    f'item {{\n  id: {i}\n  name: "class_{i}"\n}}\n' for i in range(1, num_classes + 1)
  )
  fileio.atomic_write_text(path, items)
  return path


def write_synthetic_tfrecord(
  path: str, *, num_examples: int = 4, image_size: int = 64, num_classes: int = 3, seed: int = 0
) -> str:
  """Writes TFRecords of random images, each with one box, in the OD API's format."""
  import numpy as np
  import tensorflow as tf

  rng = np.random.default_rng(seed)

  def feature(values, kind):
    if kind == "bytes":
      return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if kind == "float":
      return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with tf.io.TFRecordWriter(path) as writer:
    for i in range(num_examples):
      image = rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)
      encoded = tf.io.encode_png(image).numpy()
      x0, y0 = rng.uniform(0.05, 0.45, 2)
      x1, y1 = x0 + rng.uniform(0.2, 0.5), y0 + rng.uniform(0.2, 0.5)
      label = int(i % num_classes) + 1
      example = tf.train.Example(
        features=tf.train.Features(
          feature={
            "image/height": feature([image_size], "int"),
            "image/width": feature([image_size], "int"),
            "image/filename": feature([f"synthetic_{i}.png".encode()], "bytes"),
            "image/source_id": feature([str(i).encode()], "bytes"),
            "image/encoded": feature([encoded], "bytes"),
            "image/format": feature([b"png"], "bytes"),
            "image/object/bbox/xmin": feature([x0], "float"),
            "image/object/bbox/xmax": feature([min(x1, 0.99)], "float"),
            "image/object/bbox/ymin": feature([y0], "float"),
            "image/object/bbox/ymax": feature([min(y1, 0.99)], "float"),
            "image/object/class/text": feature([f"class_{label}".encode()], "bytes"),
            "image/object/class/label": feature([label], "int"),
          }
        )
      )
      writer.write(example.SerializeToString())
  return path


def build_model(config):
  """Builds the detection model of `config` with its variables created, the way
  the preflight does (`odapi_model.build`)."""
  from od_guard.odapi import model as odapi_model

  return odapi_model.build(config)


def save_detection_checkpoint(model, directory: str) -> str:
  """Saves `model` the way model_main_tf2 does (root object 'model'); returns the prefix."""
  import tensorflow as tf

  ckpt = tf.train.Checkpoint(model=model)
  return ckpt.save(os.path.join(directory, "ckpt"))


def save_classification_checkpoint(model, directory: str) -> str:
  """Saves only the classification backbone under root 'feature_extractor', the
  layout fine_tune_checkpoint_type "classification" restores."""
  import tensorflow as tf

  backbone = model._feature_extractor.classification_backbone  # pylint: disable=protected-access
  return tf.train.Checkpoint(feature_extractor=backbone).save(os.path.join(directory, "ckpt"))


def save_renamed_checkpoint(model, directory: str, scope: str = "CustomExtractor") -> str:
  """Saves the model as a custom training script might: the feature extractor
  under another attribute name (`model/<scope>/...` instead of
  `model/_feature_extractor/...`)."""
  import tensorflow as tf

  renamed = tf.train.Checkpoint(
    **{
      scope: model._feature_extractor,  # pylint: disable=protected-access
      "_box_predictor": model._box_predictor,  # pylint: disable=protected-access
    }
  )
  return tf.train.Checkpoint(model=renamed).save(os.path.join(directory, "ckpt"))


def save_weightless_checkpoint(directory: str) -> str:
  """What model_main_tf2 saves at step 0 with the default --checkpoint_every_n:
  a step counter and the save counter, no weights."""
  import tensorflow as tf

  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  return tf.train.Checkpoint(step=step).save(os.path.join(directory, "ckpt"))


def save_tf1_checkpoint(directory: str) -> str:
  """A TF1 name-based checkpoint with TF1 OD API scope names (tf.compat.v1
  Saver in graph mode, one Momentum step so it has slots and a global step)."""
  import tensorflow as tf

  v1 = tf.compat.v1
  with tf.Graph().as_default():
    with v1.variable_scope("FeatureExtractor/MobilenetV2/Conv"):
      w = v1.get_variable("weights", [3, 3, 3, 8])
    with v1.variable_scope("BoxPredictor_0/ClassPredictor"):
      c = v1.get_variable("weights", [1, 1, 8, 12])
    global_step = v1.train.get_or_create_global_step()
    loss = tf.reduce_sum(w) + tf.reduce_sum(c)
    train_op = v1.train.MomentumOptimizer(0.1, 0.9).minimize(loss, global_step=global_step)
    saver = v1.train.Saver()
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(train_op)
      return saver.save(sess, os.path.join(directory, "model.ckpt"), global_step=global_step)


@dataclasses.dataclass(frozen=True)
class World:
  """A tiny fine-tuning set-up on disk (see `write_world`)."""

  record: str
  label_map: str
  checkpoints: dict[str, str]

  def localize(
    self, source: str, destination: str, checkpoint: str, checkpoint_type: str | None = None
  ) -> str:
    """`localize_config` pointed at this world's data."""
    return localize_config(
      source,
      destination,
      record=self.record,
      label_map=self.label_map,
      checkpoint=checkpoint,
      checkpoint_type=checkpoint_type,
    )


def write_world(root: str, config_path: str) -> World:
  """Synthetic data (3 classes) and the checkpoints the classic mistakes need,
  all from the model `config_path` builds: 'detection' (model_main_tf2's
  layout), 'renamed' (model/CustomExtractor/...), 'tf1' (name-based) and
  'weightless' (step 0)."""
  record = write_synthetic_tfrecord(os.path.join(root, "data", "train.record"))
  label_map = write_label_map(os.path.join(root, "data", "label_map.pbtxt"), 3)
  model = build_model(load_pipeline_config(config_path))
  return World(
    record=record,
    label_map=label_map,
    checkpoints={
      "detection": save_detection_checkpoint(model, os.path.join(root, "pretrained")),
      "renamed": save_renamed_checkpoint(model, os.path.join(root, "pretrained_renamed")),
      "tf1": save_tf1_checkpoint(os.path.join(root, "pretrained_tf1")),
      "weightless": save_weightless_checkpoint(os.path.join(root, "pretrained_weightless")),
    },
  )
