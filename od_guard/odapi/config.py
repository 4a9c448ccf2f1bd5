"""Reads an OD API pipeline.config into what the preflight needs.

Parsing uses the OD API's own generated protos (`object_detection.protos`),
which import protobuf only, never TensorFlow. The result is a frozen
`FineTuneConfig`; the parsed message itself is kept for the model builder.
"""

from __future__ import annotations

import dataclasses
import os

from od_guard import errors
from od_guard.checkpoint import fileio

PLACEHOLDER = "PATH_TO_BE_CONFIGURED"


class ConfigError(errors.OdGuardError):
  """The pipeline config cannot be read or parsed."""


class OdApiUnavailableError(errors.OdGuardError):
  """The Object Detection API cannot be imported in this environment."""


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
  """The parts of a pipeline.config that decide what a fine-tune restores.

  Attributes:
    path: the config file.
    meta_architecture: 'ssd', 'faster_rcnn' or 'center_net'.
    feature_extractor_type: e.g. 'ssd_mobilenet_v2_fpn_keras'.
    num_classes: the configured number of classes.
    add_background_class: SSD's add_background_class (True elsewhere).
    use_depthwise: SSD's feature_extractor.use_depthwise (FPNLite).
    depth_multiplier: SSD feature extractor depth multiplier (1.0 elsewhere).
    image_size: (height, width) of fixed_shape_resizer, or max_dimension for
      keep_aspect_ratio_resizer, as (h, w).
    fine_tune_checkpoint: the path as written in the config.
    fine_tune_checkpoint_type: as written ('' if unset).
    effective_checkpoint_type: what model_lib_v2 will use ('' set from the
      deprecated from_detection_checkpoint).
    fine_tune_checkpoint_version: 'V1' or 'V2' (V1 when unset: the proto default).
    version_set: whether fine_tune_checkpoint_version was written at all.
    run_dummy_computation: run_fine_tune_checkpoint_dummy_computation.
    use_bfloat16: train_config.use_bfloat16.
  """

  path: str
  meta_architecture: str
  feature_extractor_type: str
  num_classes: int
  add_background_class: bool
  use_depthwise: bool
  depth_multiplier: float
  image_size: tuple[int, int]
  fine_tune_checkpoint: str
  fine_tune_checkpoint_type: str
  effective_checkpoint_type: str
  fine_tune_checkpoint_version: str
  version_set: bool
  run_dummy_computation: bool
  use_bfloat16: bool

  def summary(self) -> str:
    """One line for reports."""
    return (
      f"{self.meta_architecture}, feature_extractor {self.feature_extractor_type}, "
      f'num_classes {self.num_classes}, fine_tune_checkpoint_type "{self.effective_checkpoint_type}"'
    )

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["image_size"] = list(self.image_size)
    return d


def _protos():
  try:
    from object_detection.protos import pipeline_pb2  # protobuf only
    from object_detection.protos import train_pb2  # protobuf only
  except ImportError as e:
    raise OdApiUnavailableError(
      "The TF2 Object Detection API's protos cannot be imported here, so a "
      "pipeline.config cannot be read.",
      received=f"{type(e).__name__}: {e}",
      fix=(
        "Run od_guard in an environment with the OD API (`make env-odapi`, or "
        "`pip install tf-models-research-object-detection==2.8.0.post1 "
        "protobuf==3.20.3`); `od-guard doctor` says what this one lacks."
      ),
    ) from e
  except TypeError as e:  # protoc-3 generated code under protobuf >= 4
    raise OdApiUnavailableError(
      "The OD API's generated protos do not load under this protobuf.",
      received=f"TypeError: {str(e).splitlines()[0]}",
      fix=(
        "The package ships protoc-3 generated *_pb2.py files: pin "
        "protobuf==3.20.3, or regenerate the protos with a current protoc."
      ),
    ) from e
  return pipeline_pb2, train_pb2


def parse(path: str):
  """Parses a pipeline.config into a TrainEvalPipelineConfig message.

  Raises:
    ConfigError: missing file, not text, or not a valid pipeline config
      (with the parser's line and column).
    OdApiUnavailableError: the OD API's protos cannot be imported.
  """
  from google.protobuf import text_format

  pipeline_pb2, _ = _protos()
  if not fileio.exists(path):
    raise ConfigError(
      f"The pipeline config {path!r} does not exist.",
      received=path,
      fix="Check --pipeline_config_path.",
    )
  if fileio.isdir(path):
    raise ConfigError(
      f"{path!r} is a directory, not a pipeline config.",
      received=path,
      fix="Point --pipeline_config_path at the pipeline.config file inside it.",
    )
  with fileio.open_binary(path) as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ConfigError(
      f"{path!r} is not a text file, so it cannot be a pipeline config.",
      received=f"{path} ({len(raw):,} bytes, starts with {raw[:16]!r})",
      fix="Pass the pipeline.config (a text protobuf), not a checkpoint or binary file.",
    ) from e
  config = pipeline_pb2.TrainEvalPipelineConfig()
  try:
    text_format.Merge(text, config)
  except text_format.ParseError as e:
    if "Expected string but found" in str(e):
      fix = (
        "Quote the value: string fields need double quotes, e.g. "
        'fine_tune_checkpoint: "models/ssd/checkpoint/ckpt-0" (the zoo ships some '
        "configs with an unquoted PATH_TO_BE_CONFIGURED)."
      )
    else:
      fix = (
        "Fix the field at the line and column named above; field names must match "
        "object_detection/protos/*.proto of the installed OD API "
        "(a typo, or a field from a newer or internal OD API version)."
      )
    raise ConfigError(
      f"{path!r} is not a valid pipeline config: {e}.",
      received=f"{path} ({len(raw):,} bytes)",
      fix=fix,
    ) from e
  if not config.HasField("model") or config.model.WhichOneof("model") is None:
    raise ConfigError(
      f"{path!r} has no model {{ ... }} section.",
      received=path,
      fix="A pipeline config needs model { ssd | faster_rcnn | center_net { ... } }.",
    )
  return config


def image_size(arch) -> tuple[int, int]:
  """(height, width) the model's image resizer produces; (0, 0) if unknown."""
  resizer = arch.image_resizer
  kind = resizer.WhichOneof("image_resizer_oneof")
  if kind == "fixed_shape_resizer":
    return (resizer.fixed_shape_resizer.height, resizer.fixed_shape_resizer.width)
  if kind == "keep_aspect_ratio_resizer":
    d = resizer.keep_aspect_ratio_resizer.max_dimension
    return (d, d)
  return (0, 0)


def read(path: str, config=None) -> FineTuneConfig:
  """Reads the fine-tune relevant fields of a pipeline.config.

  Args:
    path: the config file.
    config: an already parsed message (skips parsing).

  Raises:
    ConfigError, OdApiUnavailableError: see `parse`.
  """
  config = parse(path) if config is None else config
  _, train_pb2 = _protos()
  meta = config.model.WhichOneof("model")
  arch = getattr(config.model, meta)
  supported = ("ssd", "faster_rcnn", "center_net")
  if meta not in supported:
    raise ConfigError(
      f"The meta-architecture {meta!r} is not one od_guard checks.",
      received=f"{path}: model {{ {meta} {{ ... }} }}",
      fix=f"od_guard supports {', '.join(supported)}.",
    )
  fe = arch.feature_extractor
  train = config.train_config
  ftype = train.fine_tune_checkpoint_type
  effective = ftype or ("detection" if train.from_detection_checkpoint else "classification")
  return FineTuneConfig(
    path=path,
    meta_architecture=meta,
    feature_extractor_type=fe.type,
    num_classes=arch.num_classes,
    add_background_class=arch.add_background_class if meta == "ssd" else True,
    use_depthwise=bool(getattr(fe, "use_depthwise", False)),
    depth_multiplier=float(getattr(fe, "depth_multiplier", 1.0) or 1.0),
    image_size=image_size(arch),
    fine_tune_checkpoint=train.fine_tune_checkpoint,
    fine_tune_checkpoint_type=ftype,
    effective_checkpoint_type=effective,
    fine_tune_checkpoint_version=train_pb2.CheckpointVersion.Name(
      train.fine_tune_checkpoint_version
    ),
    version_set=train.HasField("fine_tune_checkpoint_version"),
    run_dummy_computation=train.run_fine_tune_checkpoint_dummy_computation,
    use_bfloat16=train.use_bfloat16,
  )


def resolve_checkpoint_path(value: str) -> str:
  """The path model_lib_v2 will open: relative paths resolve against the
  working directory, not the config's directory."""
  return value if os.path.isabs(value) or fileio.is_remote(value) else os.path.abspath(value)
