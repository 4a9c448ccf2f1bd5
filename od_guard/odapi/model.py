"""The OD API adapter: builds the model as training will and hands over what a
fine-tune restore binds. No matching logic lives here.

`build` runs the OD API's own model builder under the given distribution
strategy and creates the variables with one forward pass on zero images of the
configured size (plus dummy groundtruth, which Faster R-CNN's second stage
needs in training mode): no input pipeline, no dataset. `restore_roots` calls
the model's own `restore_from_objects(fine_tune_checkpoint_type)`, which is
exactly what model_lib_v2 hands to `tf.train.Checkpoint`. `Kept` holds the
built model for training (`handover`), so the drop-in builds it once.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import dataclasses
import os
from typing import Any

from od_guard import errors
from od_guard.odapi import compat as odapi_compat
from od_guard.odapi import config as pipeline_config


class ModelBuildError(errors.OdGuardError):
  """The OD API could not build the configured model."""


class WorkerLostError(errors.OdGuardError):
  """A collective op of the model build failed because another worker of a
  multi-worker run stopped or cannot be reached: not a problem of the config."""


# What TF's collective ops and coordination service say when a peer is gone.
_PEER_GONE = ("Collective", "collective", "heartbeat", "coordination service")


@dataclasses.dataclass(frozen=True)
class Download:
  """A file the OD API's model builder downloads (Keras Applications weights).

  Attributes:
    url: where Keras fetches it from.
    cache: where Keras keeps it (and looks first): ~/.keras/models/<name>.
  """

  url: str
  cache: str

  @property
  def cached(self) -> bool:
    return os.path.isfile(self.cache)


_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
# CenterNet extractors that build tf.keras.applications.MobileNetV2 with
# weights="imagenet" when depth_multiplier is 1.0 (object_detection/models/
# center_net_mobilenet_v2*_feature_extractor.py).
_CENTER_NET_MOBILENET_V2 = ("mobilenet_v2", "mobilenet_v2_fpn", "mobilenet_v2_fpn_sep_conv")
_MOBILENET_V2_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def downloads(model_config) -> list[Download]:
  """What building `model_config` (a DetectionModel message) downloads. No TF.

  Keras keeps downloads under ~/.keras/models (it ignores KERAS_HOME here);
  the fine-tune checkpoint overwrites these weights afterwards, but the
  builder still fetches them at every build that does not find them cached.
  """
  if model_config.WhichOneof("model") != "center_net":
    return []
  extractor = model_config.center_net.feature_extractor
  if extractor.type not in _CENTER_NET_MOBILENET_V2 or extractor.depth_multiplier not in (0, 1):
    return []
  return [
    Download(
      url=_KERAS_APPLICATIONS + "mobilenet_v2/" + _MOBILENET_V2_FILE,
      cache=os.path.join(os.path.expanduser("~"), ".keras", "models", _MOBILENET_V2_FILE),
    )
  ]


def import_odapi():
  """Imports TF and the OD API's builder with the tf-slim aliases applied."""
  try:
    odapi_compat.apply()
    from object_detection.builders import model_builder
    import tensorflow as tf
  except ImportError as e:
    raise ModelBuildError(
      "The Object Detection API cannot be imported here.",
      received=f"{type(e).__name__}: {e}",
      fix="Run in the odapi environment; `od-guard doctor` says what this one lacks.",
    ) from e
  return tf, model_builder


def build(config, strategy=None, *, add_summaries: bool = True) -> Any:
  """Builds the detection model of a parsed pipeline config, variables created,
  as model_lib_v2.train_loop builds it (`is_training=True`, under `strategy`).

  Args:
    config: a TrainEvalPipelineConfig message.
    strategy: the tf.distribute strategy training uses (default: the current one).
    add_summaries: the builder's (train_loop passes --record_summaries).

  Raises:
    ModelBuildError: the OD API rejects the config (unknown feature extractor,
      image too small for the backbone, a label map it cannot read, a download
      it cannot make ...): any exception of the build, with its message.
    WorkerLostError: under MultiWorkerMirroredStrategy, a collective op of the
      build failed because another worker is gone.
  """
  tf, model_builder = import_odapi()
  strategy = strategy or tf.distribute.get_strategy()
  arch = getattr(config.model, config.model.WhichOneof("model"))
  num_classes = arch.num_classes
  height, width = pipeline_config.image_size(arch)
  if not height:  # a resizer without a fixed size (rare in configs): a typical one
    height, width = 320, 320
  try:
    with strategy.scope():
      model = model_builder.build(
        model_config=config.model, is_training=True, add_summaries=add_summaries
      )
      images = tf.zeros([1, height, width, 3], tf.float32)
      model.provide_groundtruth(
        groundtruth_boxes_list=[tf.constant([[0.1, 0.1, 0.6, 0.6]], tf.float32)],
        groundtruth_classes_list=[tf.one_hot([0], max(num_classes, 1))],
        groundtruth_weights_list=[tf.ones([1], tf.float32)],
      )
      preprocessed, shapes = model.preprocess(images)
      model.predict(preprocessed, shapes)
  except Exception as e:  # any builder error becomes a typed one
    lost = (
      tf.errors.UnavailableError,
      tf.errors.DeadlineExceededError,
      tf.errors.AbortedError,
      tf.errors.CancelledError,
    )
    if isinstance(e, lost) and any(t in str(e) for t in _PEER_GONE):
      raise WorkerLostError(
        "The model build stopped in a collective op (MultiWorkerMirroredStrategy "
        "broadcasts initial values): another worker stopped or cannot be reached. "
        "The model config is not the cause.",
        received=f"{type(e).__name__}: {_cause(e)}",
        fix=(
          "Read the other workers' output: the first one to stop says why. Start "
          "every worker with the same config and make sure each can reach the others."
        ),
      ) from e
    raise ModelBuildError(
      "The OD API could not build the configured model.",
      received=f"{type(e).__name__}: {_cause(e)}",
      fix=(
        "Check the model section of the config: feature_extractor.type must be one "
        "the installed OD API knows, paths it names (label maps) must exist, and "
        "some backbones need a minimum image size."
      ),
    ) from e
  return model


def _cause(e: BaseException) -> str:
  """The informative line of an error: Keras wraps layer errors in a header
  ('Exception encountered when calling layer ...'); the cause follows it."""
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  useful = [
    l for l in lines if not l.startswith(("Exception encountered", "Call arguments", "•", "File "))
  ]
  text = (useful or lines or [type(e).__name__])[0]
  return text[:300]


def restore_roots(model, checkpoint_type: str) -> dict[str, Any]:
  """The restore map model_lib_v2 builds for `checkpoint_type`.

  Raises:
    ModelBuildError: the meta-architecture refuses the type (as model_lib_v2 would).
  """
  try:
    return model.restore_from_objects(fine_tune_checkpoint_type=checkpoint_type)
  except ValueError as e:
    raise ModelBuildError(
      f"The model refuses fine_tune_checkpoint_type {checkpoint_type!r}.",
      received=str(e),
      fix='Use "detection", "classification" or "full".',
    ) from e


@dataclasses.dataclass
class Kept:
  """The preflight's built model, kept (outside any report) for training.

  Pass one to `preflight.check(keep=...)`; it fills `model`, `model_config`
  and `strategy`, and `digests`: the checkpoint-side fingerprints of the
  values, from the preflight's one read of the data shards, for the check of
  the real restore. `handed_over` says whether train_loop took the model.
  """

  add_summaries: bool = True
  model: Any = None
  model_config: Any = None
  strategy: Any = None
  digests: Any = None
  handed_over: bool = False


@contextlib.contextmanager
def handover(kept: Kept) -> Iterator[None]:
  """For the duration: model_lib_v2's model builder returns the kept model
  once, when asked for the same one (an equal model config, is_training=True,
  the same add_summaries, under the same strategy); anything else is built by
  the OD API's own builder."""
  from object_detection import model_lib_v2
  import tensorflow as tf

  build_map = model_lib_v2.MODEL_BUILD_UTIL_MAP
  real = build_map["detection_model_fn_base"]

  def detection_model_fn_base(model_config, is_training, add_summaries=True):
    if (
      kept.model is not None
      and is_training
      and add_summaries == kept.add_summaries
      and model_config == kept.model_config
      and tf.distribute.get_strategy() is kept.strategy
    ):
      model, kept.model = kept.model, None
      kept.handed_over = True
      return model
    return real(model_config=model_config, is_training=is_training, add_summaries=add_summaries)

  build_map["detection_model_fn_base"] = detection_model_fn_base
  try:
    yield
  finally:
    build_map["detection_model_fn_base"] = real
    kept.model = None
